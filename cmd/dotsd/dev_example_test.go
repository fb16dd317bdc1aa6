package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/levee-dots/levee/pki"
)

// TestConfigProductionExample: 'dotsd dev' writes a production example
// that loads, matches every development client by its SPKI pin and by no
// name, and warns of matching by name.
func TestConfigProductionExample(t *testing.T) {
	dir := t.TempDir()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	_, stop := runDevServer(t, "--dir", dir, "--signal-listen", addr)
	stop()
	path := filepath.Join(dir, productionExampleName)
	text := string(readFile(t, path))
	if !strings.Contains(text, "CN=alpha") || !strings.Contains(text, "spki-pins") {
		t.Fatalf("the example does not explain the risk of names:\n%s", text)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatalf("the example does not load: %v\n%s", err, text)
	}
	if !slices.Equal(cfg.Signal.Listen, []string{addr}) {
		t.Errorf("signal.listen %q, want [%s]", cfg.Signal.Listen, addr)
	}
	domains := cfg.domains()
	if len(domains) != len(devClients) {
		t.Fatalf("%d client domains, want %d", len(domains), len(devClients))
	}
	for _, d := range domains {
		_, leaf, err := pki.LoadKeyPair(filepath.Join(dir, "clients", d.Name, "cert.pem"), filepath.Join(dir, "clients", d.Name, "key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(d.SPKIPins, []string{pki.CUID(leaf)}) || len(d.CommonNames)+len(d.DNSNames) > 0 {
			t.Errorf("client %s: pins %q, names %q %q; want only the pin %s", d.Name, d.SPKIPins, d.CommonNames, d.DNSNames, pki.CUID(leaf))
		}
	}
	// Written once: an edited example is kept.
	if err := os.WriteFile(path, []byte("# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stop = runDevServer(t, "--dir", dir, "--signal-listen", addr)
	stop()
	if got := string(readFile(t, path)); got != "# edited\n" {
		t.Errorf("the example was rewritten:\n%s", got)
	}
}
