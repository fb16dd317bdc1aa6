//go:build linux

package main

import "testing"

// TestFailureCause: each way a one-shot request fails is named once, so
// the bench counts them together (a 5.03 names its mid, which must not
// make it a cause of its own).
func TestFailureCause(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"exit status 1: dotsctl: mid 41: server refused the request: 5.03 client X already has 8 signal-channel sessions, the most this server allows",
			"5.03: the client is at dotsd's session limit (sessions of the commands before it)"},
		{"exit status 1: dotsctl: dotsclient: connecting: context deadline exceeded; no answer from dtls 198.51.100.2:4646",
			"no session within the window (DTLS and TLS handshakes lost)"},
		{"exit status 1: dotsctl: dotsclient: PUT /.well-known/dots/mitigate/cuid=X/mid=56: context deadline exceeded",
			"session up, no answer to the request within the window"},
		{"ip netns exec ... mitigate --mid 2: signal: killed: ", "dotsctl still running past the window (handshake, then the request)"},
		{"answered after 10.2s", "answered after the window"},
		{"exit status 2: something new", "other: exit status 2: something new"},
	} {
		if got := failureCause(tc.msg); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.msg, got, tc.want)
		}
	}
}
