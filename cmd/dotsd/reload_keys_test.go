package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

const reloadBase = `signal: {listen: ["127.0.0.1:4646"]}
tls: {certificate: pki/server/cert.pem, key: pki/server/key.pem, client-cas: [pki/ca.pem]}
store: {path: levee.db}
log: {level: info}
clients:
  - {name: alpha, prefixes: ["203.0.113.0/25"], match: {common-names: [alpha]}}
`

// TestReloadKeys: what a reload of each kind of change logs, against a
// running signal-channel server: applied, needing a restart, or refused
// with the key at fault.
func TestReloadKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    []string // old, new pairs replaced in reloadBase, then what is appended
		want    []string
		refused bool
		check   func(t *testing.T, s *dotstest.Server) // what the server does after the reload
	}{
		{"nothing changed", []string{""}, []string{`msg="configuration reloaded"`, "applied=\"\" needs-restart=\"\""}, false, nil},
		{"policy", []string{"policy: {max-requests-per-client: 2}\n"}, []string{"mitigation policy reloaded", "applied=policy.max-requests-per-client"}, false,
			func(t *testing.T, s *dotstest.Server) {
				c, err := dotsclient.Dial(reqCtx(t), dotsclient.Config{Servers: []string{s.Addr}, Certificate: s.ClientCert(t, "alpha"), RootCAs: s.Roots})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for i, want := range []dots.Code{dots.Created, dots.Created, dots.ServiceUnavailable} {
					expectCode(t, fmt.Sprintf("request %d", i+1), want)(c.Mitigate(reqCtx(t), uint32(i+1), dots.Scope{
						TargetPrefix: []string{fmt.Sprintf("203.0.113.%d/32", i+1)}, Lifetime: dots.Ptr[int64](60)}))
				}
			}},
		{"limits", []string{"limits: {max-sessions-per-client: 2, request-burst: 50, max-body-bytes: 4096}\n"},
			[]string{"clients reloaded", "applied=limits.max-sessions-per-client,limits.request-burst", "key=limits.max-body-bytes"}, false, nil},
		{"log level and listen need a restart", []string{"level: info", "level: debug", "4646", "4747", ""},
			[]string{"key=signal.listen", "key=log.level", "needs-restart=signal.listen,log.level"}, false, nil},
		{"a first PSK", []string{"  - {name: beta, prefixes: [\"203.0.113.128/25\"], match: {psk: [{identity: beta-1, key-file: beta.key}]}}\n"},
			[]string{"added=beta", "key=clients[].match.psk"}, false, nil},
		{"CRL that does not load", []string{"client-cas: [pki/ca.pem]", "client-cas: [pki/ca.pem], crl: [missing.crl]", ""}, []string{"tls.crl"}, true, nil},
		{"unknown client in escalation", []string{"escalation: {gamma: {steps: [flowspec]}}\n"}, []string{"escalation"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := dotstest.Start(t, dotstest.Options{})
			path := filepath.Join(s.Dir, "dotsd.yaml")
			if err := os.WriteFile(path, []byte(reloadBase), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(s.Dir, "beta.key"), []byte("00112233445566778899aabbccddeeff\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			var out syncWriter
			ctx, cancel := context.WithCancel(context.Background())
			r := &reloader{log: slog.New(slog.NewTextHandler(&out, nil)), srv: s.Srv, svc: s.Srv.Service(), cur: cfg}
			stop := watchReload(ctx, r)
			defer func() { cancel(); stop() }()
			if err := os.WriteFile(path, []byte(strings.NewReplacer(tc.edit[:len(tc.edit)-1]...).Replace(reloadBase)+tc.edit[len(tc.edit)-1]), 0o644); err != nil {
				t.Fatal(err)
			}
			r.reload(ctx)
			log := out.String()
			if refused := strings.Contains(log, "level=ERROR msg=\"configuration reload refused"); refused != tc.refused {
				t.Fatalf("refused: %v, want %v:\n%s", refused, tc.refused, log)
			}
			for _, w := range tc.want {
				if !strings.Contains(log, w) {
					t.Errorf("the log lacks %q:\n%s", w, log)
				}
			}
			if tc.refused && r.config() != cfg {
				t.Error("a refused reload replaced the configuration in force")
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}
