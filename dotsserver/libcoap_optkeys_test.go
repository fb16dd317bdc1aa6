package dotsserver_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver"
)

// diversions is a backend that reports every diversion it is asked to
// apply, so that a test sees what a request became.
type diversions chan divert.Diversion

func (d diversions) Name() string { return "diversions" }
func (d diversions) Apply(_ context.Context, dv divert.Diversion) (divert.Applied, error) {
	select {
	case d <- dv:
	default:
	}
	return divert.Applied{Status: dots.StatusMitigated}, nil
}
func (d diversions) Withdraw(context.Context, divert.Key) error { return nil }

// await returns the first diversion of mid.
func (d diversions) await(t *testing.T, mid uint32) divert.Diversion {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case dv := <-d:
			if dv.Key.MID == mid {
				return dv
			}
		case <-timeout:
			t.Fatalf("mid %d was never diverted", mid)
		}
	}
}

// TestLibcoapOptionalKeysAndTargetURI: libcoap's coap-client, a foreign
// client, sends mitigation requests with RFC 9132 §6 comprehension-optional
// keys in which Levee keeps something else (private-use key 49152 is
// Levee's note, 49153 its countermeasure) holding integers, and requests
// naming their target by target-uri. Each is created (2.01), read back
// (2.05), and the diversion shows what the server made of it: the foreign
// keys ignored, the URI's host, scheme and port mapped to the target
// prefix, protocol and port (RFC 9132 §4.4.1.1).
func TestLibcoapOptionalKeysAndTargetURI(t *testing.T) {
	requireLibcoap(t)
	tcp := func(ports ...uint16) []dots.PortRange {
		var out []dots.PortRange
		for _, p := range ports {
			out = append(out, dots.PortRange{LowerPort: p})
		}
		return out
	}
	type body = map[uint64]any
	request := func(sc body) body { return body{1: body{2: []any{sc}}} }
	tests := []struct {
		name      string
		body      body
		prefixes  []string
		uris      []string
		ports     []dots.PortRange // nil: any
		protocols []uint8          // nil: any
	}{
		{"49152 integer at the top level",
			body{1: body{2: []any{body{6: []any{"203.0.113.1/32"}, 14: 3600}}}, 49152: 7},
			[]string{"203.0.113.1/32"}, nil, nil, nil},
		{"49152 and 49153 integers in the scope",
			request(body{6: []any{"203.0.113.2/32"}, 14: 3600, 49152: 7, 49153: -1}),
			[]string{"203.0.113.2/32"}, nil, nil, nil},
		{"49152 map and 49153 array in the scope",
			request(body{6: []any{"203.0.113.3/32"}, 14: 3600, 49152: body{1: 2}, 49153: []any{true}}),
			[]string{"203.0.113.3/32"}, nil, nil, nil},
		{"target-uri https without a port is TCP port 443",
			request(body{12: []any{"https://203.0.113.5/"}, 14: 3600}),
			[]string{"203.0.113.5/32"}, []string{"https://203.0.113.5/"}, tcp(443), []uint8{6}},
		{"target-uri with a port: the port overrides the scheme default",
			request(body{12: []any{"http://[2001:db8:6401::1]:8080/"}, 14: 3600, 49152: 1}),
			[]string{"2001:db8:6401::1/128"}, []string{"http://[2001:db8:6401::1]:8080/"}, tcp(8080), []uint8{6}},
	}
	for _, transport := range []struct{ name, scheme string }{{"dtls", "coaps"}, {"tls", "coaps+tcp"}} {
		t.Run(transport.name, func(t *testing.T) {
			got := make(diversions, 64)
			e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.Backends = []divert.Diverter{got} })
			alpha := e.dev.Clients["alpha"]
			udp := transport.scheme == "coaps"
			tlsArgs := []string{"-c", alpha.Cert, "-j", alpha.Key, "-C", e.dev.CAPath, "-N"}
			for i, tc := range tests {
				mid := uint32(100 + i)
				t.Run(tc.name, func(t *testing.T) {
					b, err := cbor.Marshal(tc.body)
					if err != nil {
						t.Fatal(err)
					}
					file := filepath.Join(t.TempDir(), "body.cbor")
					if err := os.WriteFile(file, b, 0o600); err != nil {
						t.Fatal(err)
					}
					uri := fmt.Sprintf("%s://%s/.well-known/dots/mitigate/cuid=%s/mid=%d", transport.scheme, e.addr, alpha.CUID, mid)
					run := func(args ...string) coapResult {
						t.Helper()
						return coapClient(t, append(append(args, tlsArgs...), uri)...)
					}

					run("-m", "put", "-t", "271", "-f", file).want(t, "2.01", udp, true)

					r := run("-m", "get").want(t, "2.05", udp, true)
					sc := r.body(t).MitigationScope.Scope[0]
					if sc.MID == nil || *sc.MID != mid || !slices.Equal(sc.TargetPrefix, tcPrefixesAsSent(tc.prefixes, tc.uris)) ||
						!slices.Equal(sc.TargetURI, tc.uris) {
						t.Fatalf("stored scope mid %v target-prefix %q target-uri %q, want mid %d, %q, %q",
							sc.MID, sc.TargetPrefix, sc.TargetURI, mid, tcPrefixesAsSent(tc.prefixes, tc.uris), tc.uris)
					}
					if sc.Countermeasure != "" {
						t.Fatalf("stored countermeasure %q: the foreign value was taken for one", sc.Countermeasure)
					}
					var raw map[uint64]map[uint64][]map[uint64]any
					if err := cbor.Unmarshal(r.payload, &raw); err != nil {
						t.Fatalf("status payload %x: %v", r.payload, err)
					}
					if v, ok := raw[1][2][0][49152]; ok {
						if _, text := v.(string); !text {
							t.Fatalf("status key 49152 holds %T %v: the foreign value came back", v, v)
						}
					}

					dv := got.await(t, mid)
					var prefixes []string
					for _, p := range dv.Prefixes {
						prefixes = append(prefixes, p.String())
					}
					if !slices.Equal(prefixes, tc.prefixes) {
						t.Errorf("diverted prefixes %q, want %q", prefixes, tc.prefixes)
					}
					if fmt.Sprint(portList(dv.Ports)) != fmt.Sprint(portList(tc.ports)) {
						t.Errorf("diverted ports %v, want %v (nil: any)", portList(dv.Ports), portList(tc.ports))
					}
					if !slices.Equal(dv.Protocols, tc.protocols) {
						t.Errorf("diverted protocols %v, want %v (nil: any)", dv.Protocols, tc.protocols)
					}
					for _, p := range dv.Prefixes {
						if !netip.MustParsePrefix("203.0.113.0/25").Overlaps(p) && !netip.MustParsePrefix("2001:db8:6401::/48").Overlaps(p) {
							t.Errorf("diverted %s, outside alpha's domain", p)
						}
					}
				})
			}
		})
	}
}

// tcPrefixesAsSent is the target-prefix a status echoes: the request's own,
// which a request naming its target by target-uri does not have.
func tcPrefixesAsSent(prefixes, uris []string) []string {
	if len(uris) > 0 {
		return nil
	}
	return prefixes
}

func portList(ports []dots.PortRange) []string {
	var out []string
	for _, p := range ports {
		s := fmt.Sprint(p.LowerPort)
		if p.UpperPort != nil {
			s += fmt.Sprint("-", *p.UpperPort)
		}
		out = append(out, s)
	}
	return out
}
