// Package scrub is dotsd's scrubbing backend: it drives the scrubbing nodes
// (scrubd, package scrub/agent) that drop attack traffic for the
// mitigations of the client domains configured for scrubbing. It is the
// mitigator of RFC 8811 §2 behind the DOTS server: each active diversion
// becomes one scrub.Mitigation (see Desired for the mapping), and the
// complete desired state is PUT to every configured node, again after the
// node or dotsd restarts. The nodes' counters are polled and reported as
// the mitigation's bytes-dropped, pkts-dropped, bps-dropped and
// pps-dropped (RFC 9132 §4.4.2), kept monotonic across node restarts.
//
// A mitigation is reported attack-successfully-mitigated (2) once a node
// has accepted a state that contains it, and stays in progress (1), with
// each node's reason, while none has. It is attack-exceeded-capability (4)
// while a node with traffic to it is offered more than the node's
// configured capacity. The note carries the current and the 5-minute
// average drop rates. The addresses of names are not dropped by a scope
// with no port and no protocol unless Config.Names is drop-all.
package scrub
