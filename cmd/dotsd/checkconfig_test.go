package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/pki"
)

// checkDir writes goodConfig's PKI files (a CA valid 100 days, a server
// certificate valid 60 days) into a fresh directory and returns the
// configuration's path.
func checkDir(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("levee test CA", 100*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.IssueServer([]string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 60*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.pem": ca.CertPEM, "server/cert.pem": cert, "server/key.pem": key} {
		if err := pki.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckConfig(t *testing.T) {
	good := strings.Replace(goodConfig, "client-cas: [ca.pem, /etc/levee/other-ca.pem]", "client-cas: [ca.pem]", 1)
	now := time.Now()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name    string
		config  string
		at      time.Time
		args    func(path string) []string
		wantOut []string // substrings of stdout
		wantErr string   // substring of the error; "" for success
	}{
		{name: "valid", config: good, at: now,
			wantOut: []string{"configuration valid: 2 clients, signal on 127.0.0.1:4646 [::1]:4646", "backends: none"}},
		{name: "valid with --config", config: good, at: now, args: func(p string) []string { return []string{"--config", p} },
			wantOut: []string{"configuration valid"}},
		{name: "server certificate ends soon", config: good, at: now.Add(45 * day),
			wantOut: []string{"warning: tls.certificate", "expires in", "configuration valid"}},
		{name: "server certificate expired", config: good, at: now.Add(61 * day), wantErr: "tls.certificate"},
		{name: "CA expired", config: good, at: now.Add(101 * day), wantErr: "tls.client-cas"},
		{name: "missing CA file", config: goodConfig, at: now, wantErr: "other-ca.pem"},
		{name: "unknown key", config: good + "bogus: 1\n", at: now, wantErr: "bogus"},
		{name: "key log on", config: strings.Replace(good, "client-cas: [ca.pem]", "client-cas: [ca.pem]\n  key-log: keys.log", 1), at: now,
			wantOut: []string{"warning: tls.key-log", "keys.log: the secrets", "configuration valid"}},
		{name: "no file named", config: good, at: now, args: func(string) []string { return nil }, wantErr: "dotsd check-config FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := checkDir(t, tc.config)
			args := []string{path}
			if tc.args != nil {
				args = tc.args(path)
			}
			var out, errw bytes.Buffer
			err := runCheckConfig(args, &out, &errw, tc.at)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v; stdout %s", err, out.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one naming %q; stdout %s", err, tc.wantErr, out.String())
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout %q lacks %q", out.String(), w)
				}
			}
			if tc.wantErr != "" && strings.Contains(out.String(), "configuration valid") {
				t.Errorf("a refused configuration reported valid: %s", out.String())
			}
		})
	}
}

// TestCheckConfigCommand runs the subcommand through run, as the binary does.
func TestCheckConfigCommand(t *testing.T) {
	path := checkDir(t, strings.Replace(goodConfig, ", /etc/levee/other-ca.pem", "", 1))
	var out, errw bytes.Buffer
	if err := run(t.Context(), []string{"check-config", path}, &out, &errw); err != nil {
		t.Fatalf("%v (%s)", err, errw.String())
	}
	if !strings.Contains(out.String(), "configuration valid") {
		t.Fatalf("stdout %q", out.String())
	}
}
