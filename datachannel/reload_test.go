package datachannel_test

import (
	"crypto/x509"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/levee-dots/levee/datachannel"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/service"
)

// TestCurrentClientCAs: with CurrentClientCAs each new connection is
// verified against the client CAs in force (a SIGHUP reload of dotsd
// replaces them), not those of the start: alpha's certificate is refused
// while only another CA is in force, and accepted once its own is.
func TestCurrentClientCAs(t *testing.T) {
	other, err := pki.Dev(filepath.Join(t.TempDir(), "other"), []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	otherPool, err := pki.LoadCertPool(other.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	var inForce atomic.Pointer[x509.CertPool]
	inForce.Store(otherPool)
	e := start(t, service.Options{}, func(o *datachannel.Options) { o.CurrentClientCAs = inForce.Load })
	if code, body := e.curl("alpha", "GET", datachannel.Root, ""); code != -1 {
		t.Fatalf("alpha's certificate accepted (status %d) while another CA is in force: %s", code, body)
	}
	ours, err := pki.LoadCertPool(e.dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	inForce.Store(ours)
	if code, body := e.curl("alpha", "GET", datachannel.Root, ""); code == -1 {
		t.Fatalf("alpha's certificate refused once its CA is in force: %s", body)
	}
}
