package datachannel_test

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestObserve: each answered request reaches Options.Observe with its
// method, its HTTP status and a duration; a method the data channel does
// not serve is told as OTHER.
func TestObserve(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	e := start(t, service.Options{}, func(o *datachannel.Options) {
		o.Observe = func(method string, status int, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if d <= 0 {
				t.Errorf("%s %d took %v", method, status, d)
			}
			seen = append(seen, fmt.Sprintf("%s %d", method, status))
		}
	})
	code, body := e.curl("alpha", "POST", datachannel.Root, register(e.cuid("alpha")))
	e.want("register", 201, code, body)
	code, body = e.curl("alpha", "GET", "/nowhere", "")
	e.want("unknown path", 404, code, body)
	code, body = e.curl("alpha", "PATCH", "/nowhere", "")
	e.want("PATCH", 404, code, body)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"POST 201", "GET 404", "OTHER 404"}; !slices.Equal(seen, want) {
		t.Fatalf("observed %q, want %q", seen, want)
	}
}
