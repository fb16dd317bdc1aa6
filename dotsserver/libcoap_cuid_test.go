package dotsserver_test

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
)

// fig11 is the CBOR body of RFC 9132 Figure 11, the 4.09 of a cuid
// collision: {1: {2: [{17: {19: 3}}]}} (conflict-cause cuid-collision).
const fig11 = "a101a10281a111a11303"

// libcoapDump matches the hex dump libcoap 4.3 logs at -v 7 after a PDU
// with a binary payload ("<<a101...>>"), which is how the payload of a
// 4.xx response is seen (-o writes 2.xx payloads only).
var libcoapDump = regexp.MustCompile(`(?m)^<<([0-9a-f]+)>>$`)

// TestLibcoapCUIDCollision: a foreign client (libcoap's coap-client) with
// beta's certificate claims alpha's bound cuid and gets 4.09 with the
// Figure 11 conflict-information (RFC 9132 §4.4.1), over DTLS and TLS, for
// a mitigation request and a status read; alpha's request is untouched.
func TestLibcoapCUIDCollision(t *testing.T) {
	requireLibcoap(t)
	bodyFile := fig8File(t)
	for _, tc := range []struct{ name, scheme string }{
		{"dtls", "coaps"},
		{"tls", "coaps+tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "127.0.0.1:0", nil)
			alpha, beta := e.dev.Clients["alpha"], e.dev.Clients["beta"]
			udp := tc.scheme == "coaps"
			uri := tc.scheme + "://" + e.addr + "/.well-known/dots/mitigate/cuid=" + alpha.CUID + "/mid=123"
			as := func(c string) []string {
				cl := e.dev.Clients[c]
				return []string{"-N", "-c", cl.Cert, "-j", cl.Key, "-C", e.dev.CAPath}
			}
			run := func(who string, args ...string) coapResult {
				t.Helper()
				return coapClient(t, append(append(append([]string{"-v", "7"}, args...), as(who)...), uri)...)
			}
			// alpha's first request binds its derived cuid to alpha's key.
			run("alpha", "-m", "put", "-t", "271", "-f", bodyFile).want(t, "2.01", udp, true)
			if beta.CUID == alpha.CUID {
				t.Fatal("the dev PKI gave alpha and beta the same cuid")
			}
			for _, method := range []string{"put", "get"} {
				args := []string{"-m", method}
				if method == "put" {
					args = append(args, "-t", "271", "-f", bodyFile)
				}
				r := run("beta", args...).want(t, "4.09", udp, true)
				if !strings.Contains(r.options, "Content-Format:application/dots+cbor") {
					t.Fatalf("%s: 4.09 options [%s], want Content-Format application/dots+cbor", method, r.options)
				}
				payload := collisionPayload(t, r)
				if hex.EncodeToString(payload) != fig11 {
					t.Errorf("%s: 4.09 payload %x, want RFC 9132 Figure 11 %s", method, payload, fig11)
				}
				m, err := dots.Decode(payload)
				if err != nil {
					t.Fatalf("%s: decoding the 4.09 payload %x: %v", method, payload, err)
				}
				ci := m.MitigationScope.Scope[0].ConflictInformation
				if ci == nil || ci.ConflictCause == nil || *ci.ConflictCause != dots.CauseCUIDCollision ||
					ci.ConflictStatus != nil || ci.ConflictScope != nil || ci.RetryTimer != nil {
					t.Fatalf("%s: conflict-information %+v, want conflict-cause cuid-collision only", method, ci)
				}
			}
			sc := run("alpha", "-m", "get").want(t, "2.05", udp, true).body(t).MitigationScope.Scope[0]
			if sc.Status == nil || *sc.Status != dots.StatusInProgress || sc.Lifetime == nil || *sc.Lifetime < 3500 {
				t.Fatalf("alpha's request after beta's attempts: %+v", sc)
			}
		})
	}
}

// collisionPayload is the payload of the 4.09 response coap-client logged:
// the dump that follows its response line.
func collisionPayload(t *testing.T, r coapResult) []byte {
	t.Helper()
	at := regexp.MustCompile(`(?m)^v:1 t:[A-Z]+ c:4\.09 `).FindStringIndex(r.log)
	if at == nil {
		t.Fatalf("no 4.09 response line in\n%s", r.log)
	}
	m := libcoapDump.FindStringSubmatch(r.log[at[1]:])
	if m == nil {
		t.Fatalf("no payload dump after the 4.09 response in\n%s", r.log)
	}
	b, err := hex.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return b
}
