// Package dashboard is dotsd's read-only web view for operators: an
// http.Handler with an overview (sessions, active mitigations by status,
// BGP neighbors, scrubbing nodes), the mitigation list kept live by
// server-sent events from the service's Watch stream, each mitigation's
// drop rates over the last 15 minutes (bps and pps, from the counters the
// mitigators measured; a mitigation nothing measures says so) with what
// each backend applied, the BGP neighbors with their routes, and a log of
// the service's events.
//
// Every page and every /api/ endpoint needs authentication: a bearer token
// read from a file only its owner can read (browsers log in with it once
// and get an HttpOnly, SameSite=Strict cookie), or a client certificate
// from the operator CA. The pages, their script and style are embedded;
// the Content-Security-Policy allows nothing from elsewhere and no inline
// script. The dashboard reads the service and the backends' status through
// small interfaces and changes nothing.
package dashboard
