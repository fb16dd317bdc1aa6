package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

var alphaKey = []byte("alpha-secret-key-0123456789")

// newPSKCtlEnv is a server whose alpha domain has the PSK alpha-psk-1, and
// a dotsctl configuration for it: psk instead of certificate and key.
func newPSKCtlEnv(t *testing.T, transport string) *ctlEnv {
	t.Helper()
	e := newCtlEnvWith(t, dotstest.Options{Mutate: func(o *dotsserver.Options) {
		o.Domains = dotstest.Domains()
		o.Domains[0].PSKs = []dotsserver.PSK{{Identity: "alpha-psk-1", Key: alphaKey}}
	}})
	if err := os.WriteFile(filepath.Join(e.dir, "alpha.psk"), []byte(hex.EncodeToString(alphaKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf("servers: [%q]\npsk: {identity: alpha-psk-1, key-file: alpha.psk}\nstate: state/alpha.json\n", e.addr)
	if transport != "" {
		yml += "transport: " + transport + "\n"
	}
	if err := os.WriteFile(e.config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPSKLifecycle: dotsctl with a PSK and no certificate asks for, reads
// and withdraws a mitigation under the cuid derived from its identity.
func TestPSKLifecycle(t *testing.T) {
	e := newPSKCtlEnv(t, "")
	out := e.ok(t, "mitigate", "--target", "203.0.113.10/32", "--lifetime", "600")
	contains(t, "mitigate output", out, "mid 1 created (2.01)\n")
	out = e.ok(t, "status")
	if r := row(t, out, 1); !strings.Contains(r, "203.0.113.10/32") {
		t.Fatalf("status row of mid 1 %q: want the target", r)
	}
	all := e.srv.Srv.Service().AllMitigations()
	if want := dotsclient.PSKCUID("alpha-psk-1"); len(all) != 1 || all[0].CUID != want || all[0].Domain != "alpha" {
		t.Fatalf("server holds %+v, want one request of cuid %s in alpha", all, want)
	}
	e.ok(t, "withdraw", "1")
	// beta's addresses stay beta's.
	err := e.fails(t, "mitigate", "--target", "203.0.113.130/32")
	contains(t, "error", err.Error(), "4.03")
}

func TestPSKConfigRefused(t *testing.T) {
	e := newPSKCtlEnv(t, "")
	base, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, extra string
		mode        os.FileMode
		want        string
	}{
		{"with a certificate", "certificate: pki/clients/alpha/cert.pem\nkey: pki/clients/alpha/key.pem\n", 0o600, "not both"},
		{"over TLS", "transport: tls\n", 0o600, "tls does not work with psk"},
		{"group-readable key", "", 0o640, "readable by its owner only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(e.config, append(append([]byte(nil), base...), tc.extra...), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(e.dir, "alpha.psk"), tc.mode); err != nil {
				t.Fatal(err)
			}
			err := e.fails(t, "status")
			contains(t, "error", err.Error(), tc.want)
		})
	}
}
