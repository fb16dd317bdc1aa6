// Package service is the DOTS server's mitigation service: the one
// channel-independent API behind the signal channel (RFC 9132), and the data
// channel, gateways, metrics and dashboard to come. It holds every client's
// mitigation requests (through the pure protocol core in
// dotsserver/mitigation) and session configurations (dotsserver/session),
// checks that a client's domain owns every target it names (RFC 8811 §2.2.1,
// RFC 9132 §4.4.1: target-prefix, target-fqdn and target-uri, the latter
// resolved and kept), writes every accepted change to the store before it is
// acknowledged (a failed write changes nothing), hands diversions to the
// backends in order (make before break) and takes their outcomes and
// measured counters (RFC 9132 §4.4.2 keys 25–28) back by one ordered path,
// and streams the changes that Observe (§4.4.2.1) reports.
//
// What a DOTS server does, as methods of Service: PutMitigation (create,
// refresh, efficacy update), Mitigation and Mitigations (status),
// WithdrawMitigation, Watch (the stream of changes behind Observe);
// SessionConfig, SetSessionConfig and ResetSessionConfig (RFC 9132 §4.5);
// CheckCUID (the cuid binding of §4.4.1); SessionLost (§4.7: preconfigured
// requests start); Tick (lifetimes and active-but-terminating periods);
// DiversionUpdate and Measured (what the backends report).
//
// It knows nothing of CoAP: identities come in as a Client (cuid and domain),
// errors go out as *dots.Error carrying the response code.
package service
