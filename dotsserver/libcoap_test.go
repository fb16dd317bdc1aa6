package dotsserver_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

// The libcoap interop test drives the server with Debian's coap-client
// (libcoap 4.3, OpenSSL build) acting as a foreign DOTS client that holds
// alpha's dev certificate. It sends the RFC 9132 Figure 7 request with the
// Figure 8 CBOR body, reads the status, withdraws, and checks two refusals.
//
// coap-client exits 0 whatever the response code (even when the handshake
// fails), so the outcome is read from its log: at -v 6 libcoap logs every
// received PDU as
//
//	v:1 t:CON c:2.01 i:127a {01} [ Content-Format:application/dots+cbor ] :: binary data length 121
//	v:1 t:CON c:4.15 i:1274 {01} [ Content-Format:text/plain ] :: 'Content-Format 50 is not application/dots+cbor (271)'
//
// and the request it sends with c:PUT/GET/DELETE, which the response
// pattern below does not match. -o writes the payload of a 2.xx response
// to a file (libcoap writes no file for 4.xx/5.xx).

const libcoapClient = "coap-client-openssl"

// fig8 is the CBOR body of RFC 9132 Figure 8 (the Figure 7 request):
// {1: {2: [{6: ["2001:db8:6401::1/128", "2001:db8:6401::2/128"],
// 7: [{8: 80}, {8: 443}, {8: 8080}], 10: [6], 14: 3600}]}}
const fig8 = "A101A10281A4068274323030313A6462383A363430313A3A312F31323874323030313A6462383A363430313A3A322F3132380783A1081850A1081901BBA108191F900A81060E190E10"

// libcoapResponse matches a received PDU logged by libcoap 4.3 at -v 6.
var libcoapResponse = regexp.MustCompile(`(?m)^v:1 t:(CON|NON|ACK|RST) c:([1-5]\.[0-9]{2}) i:[0-9a-f]+ \{[0-9a-f]*\} \[ (.*?) ?\](?: :: (.*))?$`)

// coapResult is what coap-client received.
type coapResult struct {
	typ, code string // message type (always CON over TCP, which has none) and "2.01" etc.
	options   string // e.g. "Content-Format:text/plain"
	text      string // a printable payload as libcoap logs it, unquoted
	payload   []byte // the payload written by -o (2.xx responses only)
	log       string // combined stdout and stderr
}

// fig8File writes the fig8 body to a file for coap-client's -f.
func fig8File(t *testing.T) string {
	t.Helper()
	body, err := hex.DecodeString(fig8)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fig8.cbor")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func requireLibcoap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(libcoapClient); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (apt-get install libcoap3-bin): %v", libcoapClient, err)
		}
		t.Skip("coap-client-openssl not installed (apt-get install libcoap3-bin)")
	}
}

// coapClient runs coap-client with args (method, options, URI), adding
// verbosity, a 5 s wait bound and an output file, and returns the first
// response it logged.
func coapClient(t *testing.T, args ...string) coapResult {
	t.Helper()
	return runCoapClient(t, libcoapClient, args...)
}

// runCoapClient is coapClient with another build of libcoap's client.
func runCoapClient(t *testing.T, libcoapClient string, args ...string) coapResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "payload")
	full := append([]string{"-v", "6", "-B", "5", "-o", out}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, libcoapClient, full...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	log := stdout.String() + stderr.String()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no exit within 15 s (%v)\n%s", libcoapClient, strings.Join(full, " "), err, log)
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", libcoapClient, strings.Join(full, " "), err, log)
	}
	m := libcoapResponse.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("%s %s: no response logged after %v\n%s", libcoapClient, strings.Join(full, " "), time.Since(start).Round(time.Millisecond), log)
	}
	r := coapResult{typ: m[1], code: m[2], options: m[3], log: log}
	if s := m[4]; len(s) >= 2 && s[0] == '\'' && s[len(s)-1] == '\'' {
		r.text = s[1 : len(s)-1]
	}
	if b, err := os.ReadFile(out); err == nil {
		r.payload = b
	}
	return r
}

// want checks the response code; over UDP it also checks the message type:
// a piggybacked ACK for CON, and NON for NON (RFC 9132 §4.4, RFC 7252 §5.2.3).
func (r coapResult) want(t *testing.T, code string, udp, non bool) coapResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("response %s, want %s (diagnostic %q)\n%s", r.code, code, r.text, r.log)
	}
	switch {
	case !udp:
	case !non && r.typ != "ACK":
		t.Errorf("response to a CON request has type %s, want a piggybacked ACK", r.typ)
	case non && r.typ != "NON":
		t.Errorf("response to a NON request has type %s, want NON", r.typ)
	}
	return r
}

func (r coapResult) body(t *testing.T) *dots.Message {
	t.Helper()
	if !strings.Contains(r.options, "Content-Format:application/dots+cbor") {
		t.Fatalf("%s response options [%s], want Content-Format application/dots+cbor", r.code, r.options)
	}
	m, err := dots.Decode(r.payload)
	if err != nil {
		t.Fatalf("decoding the %s payload %x: %v", r.code, r.payload, err)
	}
	if m.MitigationScope == nil || len(m.MitigationScope.Scope) != 1 {
		t.Fatalf("%s payload %+v: want one mitigation scope", r.code, m)
	}
	return m
}

func TestLibcoapInterop(t *testing.T) {
	requireLibcoap(t)
	bodyFile := fig8File(t)
	for _, tc := range []struct {
		name, listen, scheme string
		non                  bool
	}{
		{"dtls/127.0.0.1", "127.0.0.1:0", "coaps", true},
		{"tls/127.0.0.1", "127.0.0.1:0", "coaps+tcp", true},
		{"dtls/::1", "[::1]:0", "coaps", true},
		{"tls/::1", "[::1]:0", "coaps+tcp", true},
		// Confirmable for comparison: RFC 9132 wants NON, but a server must
		// answer CON too (with a piggybacked ACK).
		{"dtls-con/127.0.0.1", "127.0.0.1:0", "coaps", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.listen, nil)
			alpha, beta := e.dev.Clients["alpha"], e.dev.Clients["beta"]
			udp := tc.scheme == "coaps"
			// -c/-j present alpha's certificate; -C validates the server's
			// chain against the dev CA (and the CA signs both sides).
			tlsArgs := []string{"-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath}
			if tc.non {
				tlsArgs = append(tlsArgs, "-N")
			}
			base := tc.scheme + "://" + e.addr + "/.well-known/dots/mitigate/cuid="
			uri := base + alpha.CUID + "/mid=123"
			run := func(args ...string) coapResult {
				t.Helper()
				return coapClient(t, append(append(args, tlsArgs...), uri)...)
			}

			// 1. RFC 9132 Figure 7: 2.01 with mid and lifetime (Figure 10).
			r := run("-m", "put", "-t", "271", "-f", bodyFile).want(t, "2.01", udp, tc.non)
			sc := r.body(t).MitigationScope.Scope[0]
			if sc.MID == nil || *sc.MID != 123 || sc.Lifetime == nil || *sc.Lifetime != 3600 {
				t.Fatalf("2.01 scope %+v: want mid 123, lifetime 3600", sc)
			}

			// 2. Status: in progress (no mitigator), the Figure 7 targets.
			r = run("-m", "get").want(t, "2.05", udp, tc.non)
			sc = r.body(t).MitigationScope.Scope[0]
			if sc.MID == nil || *sc.MID != 123 {
				t.Fatalf("2.05 scope %+v: want mid 123", sc)
			}
			if sc.Status == nil || *sc.Status != dots.StatusInProgress {
				t.Fatalf("2.05 scope status %v: want attack-mitigation-in-progress (1)", sc.Status)
			}
			if want := []string{"2001:db8:6401::1/128", "2001:db8:6401::2/128"}; !slices.Equal(sc.TargetPrefix, want) {
				t.Fatalf("2.05 target-prefix %q, want %q", sc.TargetPrefix, want)
			}
			var ports []uint16
			for _, pr := range sc.TargetPortRange {
				ports = append(ports, pr.LowerPort)
			}
			if !slices.Equal(ports, []uint16{80, 443, 8080}) || !slices.Equal(sc.TargetProtocol, []uint32{6}) {
				t.Fatalf("2.05 ports %v protocols %v, want [80 443 8080] and [6]", ports, sc.TargetProtocol)
			}

			// 4. Refusals, with plain-text diagnostics.
			r = run("-m", "put", "-t", "50", "-f", bodyFile).want(t, "4.15", udp, tc.non)
			if !strings.Contains(r.options, "Content-Format:text/plain") || r.text == "" {
				t.Fatalf("4.15 options [%s] payload %q: want a text/plain diagnostic", r.options, r.text)
			}
			r = coapClient(t, append(append([]string{"-m", "put", "-t", "271", "-f", bodyFile}, tlsArgs...), base+beta.CUID+"/mid=123")...)
			r.want(t, "4.03", udp, tc.non)
			if !strings.Contains(r.options, "Content-Format:text/plain") || r.text == "" {
				t.Fatalf("4.03 options [%s] payload %q: want a text/plain diagnostic", r.options, r.text)
			}

			// 3. Withdrawal; the request stays visible as withdrawn.
			r = run("-m", "delete").want(t, "2.02", udp, tc.non)
			r = run("-m", "get").want(t, "2.05", udp, tc.non)
			if st := r.body(t).MitigationScope.Scope[0].Status; st == nil || *st != dots.StatusClientWithdrawn {
				t.Fatalf("after DELETE status %v, want dots-client-withdrawn-mitigation (5)", st)
			}
		})
	}
}
