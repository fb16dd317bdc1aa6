// Package levee is the root of Levee, a DDoS Open Threat Signaling (DOTS)
// system: the server dotsd and the client dotsctl (cmd/), the RFC 9132 wire
// format (dots/), the signal channel (dotsserver/, dotsclient/), the
// diversion backends (divert/), FlowSpec translation (flowspec/), the store
// (store/) and the lab of real test peers (lab/). This file only carries
// the repository-wide checks in meta_test.go.
package levee
