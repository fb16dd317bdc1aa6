package datachannel_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/levee-dots/levee/datachannel"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/service"
	"github.com/levee-dots/levee/store"
)

// env is a data-channel server on loopback with the development PKI's
// clients alpha and beta (dotstest.Domains) and gamma (no domain).
type env struct {
	t   testing.TB
	dev *pki.DevPKI
	url string
	svc *service.Service
	dir string
}

func start(t testing.TB, o service.Options, mutate ...func(*datachannel.Options)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	var err error
	if e.dev, err = pki.Dev(filepath.Join(e.dir, "pki"), []string{"alpha", "beta", "gamma"}); err != nil {
		t.Fatal(err)
	}
	cert, _, err := pki.LoadKeyPair(e.dev.ServerCert, e.dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(e.dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(e.dir, "levee.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.Store = st
	if e.svc, err = service.New(o); err != nil {
		t.Fatal(err)
	}
	e.svc.Start()
	domains := dotstest.Domains()
	opts := datachannel.Options{Service: e.svc, Certificate: cert, ClientCAs: roots, MaxBody: 64 << 10,
		Identify: func(c *x509.Certificate) (datachannel.Identity, error) {
			id, err := dotsserver.IdentifyCertificate(domains, c)
			return datachannel.Identity{CUID: id.CUID, SPKI: id.SPKI, Domain: id.Domain}, err
		}}
	for _, m := range mutate {
		m(&opts)
	}
	srv, err := datachannel.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); e.svc.Close(); st.Close() })
	e.url = "https://" + srv.Addr().String()
	return e
}

func (e *env) cuid(client string) string { return e.dev.Clients[client].CUID }

func (e *env) clientPath(client string) string {
	return datachannel.Root + "/dots-client=" + e.cuid(client)
}

// curl runs curl as client (its development certificate; "" for none) and
// returns the HTTP status and the body. body is a file (@path) or inline JSON.
func (e *env) curl(client, method, path, body string, headers ...string) (int, []byte) {
	e.t.Helper()
	out := filepath.Join(e.t.TempDir(), "out")
	args := []string{"-sS", "--max-time", "10", "--cacert", e.dev.CAPath, "-X", method, "-o", out, "-w", "%{http_code}"}
	if client != "" {
		c := e.dev.Clients[client]
		args = append(args, "--cert", c.Cert, "--key", c.Key)
	}
	if body != "" {
		ct := "Content-Type: application/yang-data+json"
		for _, h := range headers {
			if strings.HasPrefix(strings.ToLower(h), "content-type:") {
				ct = h
			}
		}
		args = append(args, "-H", ct, "--data-binary", body)
	}
	for _, h := range headers {
		if !strings.HasPrefix(strings.ToLower(h), "content-type:") {
			args = append(args, "-H", h)
		}
	}
	args = append(args, e.url+path)
	cmd := exec.Command("curl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	code, err := cmd.Output()
	if err != nil {
		return -1, stderr.Bytes()
	}
	n, err := strconv.Atoi(string(code))
	if err != nil {
		e.t.Fatalf("curl printed %q", code)
	}
	b, _ := os.ReadFile(out)
	return n, b
}

// want checks a success status.
func (e *env) want(what string, status int, gotStatus int, body []byte) {
	e.t.Helper()
	if gotStatus != status {
		e.t.Fatalf("%s: status %d, want %d; body %s", what, gotStatus, status, body)
	}
}

// wantErr checks an RFC 8040 error answer: status, error-type, error-tag
// and a message containing msg.
func (e *env) wantErr(what string, status int, tag, msg string, gotStatus int, body []byte) {
	e.t.Helper()
	if gotStatus != status {
		e.t.Errorf("%s: status %d, want %d; body %s", what, gotStatus, status, body)
		return
	}
	errs, err := data.DecodeErrors(body)
	if err != nil {
		e.t.Errorf("%s: not an RFC 8040 errors body (%v): %s", what, err, body)
		return
	}
	x := errs.Errors.Error[0]
	wantType := "application"
	if status == 400 || status == 413 {
		wantType = "protocol"
	}
	if x.ErrorTag != tag || x.ErrorType != wantType || x.ErrorMessage == "" || !strings.Contains(x.ErrorMessage, msg) {
		e.t.Errorf("%s: got %+v, want %s/%s with message ~%q", what, x, wantType, tag, msg)
	}
}

func register(cuid string) string {
	return fmt.Sprintf(`{"ietf-dots-data-channel:dots-client":[{"cuid":%q}]}`, cuid)
}

// alphaPrefixes are the prefixes of alpha's domain (dotstest.Domains).
func (e *env) alphaPrefixes() []netip.Prefix { return dotstest.Domains()[0].Prefixes }
