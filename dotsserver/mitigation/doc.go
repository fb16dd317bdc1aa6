// Package mitigation is the protocol core of the DOTS server's mitigation
// requests (RFC 9132 §4.4): creation, refresh and efficacy updates (§4.4.1,
// §4.4.3), overlap and conflict rules (§4.4.1 "higher mid wins",
// conflict-information), withdrawal with the active-but-terminating period
// (§4.4.4), lifetime expiry, and trigger-mitigation=false requests that are
// activated on loss of the signal channel (§4.4.1, §4.7).
//
// The Book is pure state: no goroutines, no I/O, no clock. Every method takes
// the current time and returns what changed, so the caller can persist the
// changes before it answers the client and only then apply the effects
// (diversion, notifications).
package mitigation
