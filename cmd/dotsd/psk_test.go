package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/pki"
)

// pskClients replaces goodConfig's clients: alpha has two PSKs (hex and
// base64 key files), beta a pin.
const pskClients = `clients:
  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match:
      psk:
        - {identity: alpha-psk-1, key-file: keys/alpha.psk}
        - {identity: alpha-psk-2, key-file: keys/alpha2.psk}
  - name: beta
    prefixes: ["203.0.113.128/25"]
    match:
      spki-pins: ["Zm9v"]
`

// pskConfigFile writes goodConfig with clients (text) and the key files
// (path relative to the configuration → content, mode) in a fresh directory.
func pskConfigFile(t *testing.T, clients string, keys map[string]keyFile) string {
	t.Helper()
	text := goodConfig[:strings.Index(goodConfig, "clients:")] + clients
	path := writeConfig(t, "dotsd.yaml", text)
	for name, k := range keys {
		p := filepath.Join(filepath.Dir(path), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(k.text), k.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, k.mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
	}
	return path
}

type keyFile struct {
	text string
	mode os.FileMode
}

const (
	hexKey = "000102030405060708090a0b0c0d0e0f1011121314151617" // 24 bytes
	b64Key = "YWxwaGEtc2VjcmV0LWtleS0wMTIzNDU2Nzg5"             // "alpha-secret-key-0123456789"
)

// TestPSKConfig: the keys of clients[].match.psk are read from their files
// (hex or base64) and handed to the server's client domains.
func TestPSKConfig(t *testing.T) {
	path := pskConfigFile(t, pskClients, map[string]keyFile{
		"keys/alpha.psk":  {hexKey + "\n", 0o600},
		"keys/alpha2.psk": {b64Key, 0o400},
	})
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.domains()
	if len(d) != 2 || len(d[0].PSKs) != 2 || len(d[1].PSKs) != 0 {
		t.Fatalf("domains %+v: want alpha with 2 PSKs, beta with none", d)
	}
	want := []struct {
		identity string
		key      []byte
	}{
		{"alpha-psk-1", []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17")},
		{"alpha-psk-2", []byte("alpha-secret-key-0123456789")},
	}
	for i, w := range want {
		if p := d[0].PSKs[i]; p.Identity != w.identity || !bytes.Equal(p.Key, w.key) {
			t.Errorf("PSK %d: %q %x, want %q %x", i, p.Identity, p.Key, w.identity, w.key)
		}
	}
}

func TestPSKConfigErrors(t *testing.T) {
	good := map[string]keyFile{"keys/alpha.psk": {hexKey, 0o600}, "keys/alpha2.psk": {b64Key, 0o600}}
	with := func(name string, k keyFile) map[string]keyFile {
		m := map[string]keyFile{}
		for n, v := range good {
			m[n] = v
		}
		m[name] = k
		return m
	}
	for _, tc := range []struct {
		name    string
		clients string
		keys    map[string]keyFile
		want    []string
	}{
		{"group-readable key", pskClients, with("keys/alpha.psk", keyFile{hexKey, 0o640}),
			[]string{"clients[0].match.psk[0].key-file", "mode 0640", "chmod 600"}},
		{"world-readable key", pskClients, with("keys/alpha2.psk", keyFile{b64Key, 0o604}),
			[]string{"clients[0].match.psk[1].key-file", "mode 0604"}},
		{"short key", pskClients, with("keys/alpha.psk", keyFile{"000102030405060708090a0b0c0d0e", 0o600}),
			[]string{"clients[0].match.psk[0].key-file", "15 bytes, at least 16"}},
		{"not hex or base64", pskClients, with("keys/alpha.psk", keyFile{"this is no key!", 0o600}),
			[]string{"clients[0].match.psk[0].key-file", "neither hex nor base64"}},
		{"empty key file", pskClients, with("keys/alpha.psk", keyFile{"\n", 0o600}),
			[]string{"clients[0].match.psk[0].key-file", "is empty"}},
		{"missing key file", pskClients, map[string]keyFile{"keys/alpha.psk": {hexKey, 0o600}},
			[]string{"clients[0].match.psk[1].key-file", "alpha2.psk"}},
		{"no key-file", strings.Replace(pskClients, ", key-file: keys/alpha2.psk", "", 1), good,
			[]string{"clients[0].match.psk[1].key-file", "alpha-psk-2"}},
		{"no identity", strings.Replace(pskClients, "identity: alpha-psk-2, ", "", 1), good,
			[]string{"clients[0].match.psk[1].identity"}},
		{"identity twice in a domain", strings.Replace(pskClients, "alpha-psk-2", "alpha-psk-1", 1), good,
			[]string{"clients[0].match.psk[1].identity", `"alpha-psk-1" is already the identity of clients[0].match.psk[0]`}},
		{"identity of another domain", strings.Replace(pskClients, `spki-pins: ["Zm9v"]`, "psk: [{identity: alpha-psk-2, key-file: keys/alpha.psk}]", 1), good,
			[]string{"clients[1].match.psk[0].identity", `"alpha-psk-2" is already the identity of clients[0].match.psk[1]`}},
		{"identity too long", strings.Replace(pskClients, "alpha-psk-2", strings.Repeat("x", 129), 1), good,
			[]string{"clients[0].match.psk[1].identity", "longer than 128"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := pskConfigFile(t, tc.clients, tc.keys)
			cfg, err := loadConfig(path)
			if err == nil {
				t.Fatalf("loadConfig accepted the configuration: %+v", cfg.domains())
			}
			for _, w := range append([]string{path}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestPSKServe: dotsd run from a configuration with a PSK client serves a
// client that has the key and no certificate.
func TestPSKServe(t *testing.T) {
	dir := t.TempDir()
	dev, err := pki.Dev(filepath.Join(dir, "pki"), []string{"alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gamma.psk"), []byte(hexKey), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cfg := fmt.Sprintf(`signal: {listen: [%q]}
tls: {certificate: %q, key: %q, client-cas: [%q]}
store: {path: levee.db}
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25"]
    match: {common-names: [alpha]}
  - name: gamma
    prefixes: ["198.51.100.0/24"]
    match:
      psk: [{identity: gamma-psk-1, key-file: gamma.psk}]
`, addr, dev.ServerCert, dev.ServerKey, dev.CAPath)
	path := filepath.Join(dir, "dotsd.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &logBuffer{ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--config", path}, &bytes.Buffer{}, stderr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dotsd: %v", err)
		}
	}()
	select {
	case <-stderr.ready:
	case err := <-done:
		t.Fatalf("dotsd: %v\n%s", err, stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("dotsd not ready within 20 s\n%s", stderr)
	}
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dotsclient.Dial(reqCtx(t), dotsclient.Config{Servers: []string{addr}, PSK: &dotsclient.PSK{Identity: "gamma-psk-1", Key: key}})
	if err != nil {
		t.Fatalf("PSK dial: %v", err)
	}
	defer c.Close()
	r, err := c.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"198.51.100.7/32"}, Lifetime: dots.Ptr[int64](600)})
	wantCode(t, "PUT mid=1 with a PSK", r, err, dots.Created)
	r, err = c.Mitigate(reqCtx(t), 2, dots.Scope{TargetPrefix: []string{"203.0.113.7/32"}, Lifetime: dots.Ptr[int64](600)})
	wantCode(t, "PUT mid=2 for alpha's address", r, err, dots.Forbidden)
}
