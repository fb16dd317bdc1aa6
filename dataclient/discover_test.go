package dataclient

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/pki"
)

// hostMetaServer is an HTTPS server on loopback, with mutual TLS from a
// development PKI, whose /.well-known/host-meta answers status and body:
// the discovery documents of RFC 8040 §3.1 that a DOTS server may serve.
// It returns a client configuration for it.
func hostMetaServer(t *testing.T, status int, body string) Config {
	t.Helper()
	dev, err := pki.Dev(filepath.Join(t.TempDir(), "pki"), []string{"alpha"})
	if err != nil {
		t.Fatal(err)
	}
	srvCert, _, err := pki.LoadKeyPair(dev.ServerCert, dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCertPool(dev.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	cliCert, _, err := pki.LoadKeyPair(dev.Clients["alpha"].Cert, dev.Clients["alpha"].Key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/host-meta", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		if r.Header.Get("Accept") != "application/xrd+xml" {
			http.Error(w, "want Accept: application/xrd+xml", http.StatusNotAcceptable)
			return
		}
		w.Header().Set("Content-Type", "application/xrd+xml")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert}}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return Config{URL: "https://" + l.Addr().String(), Certificate: cliCert, RootCAs: roots, CUID: dev.Clients["alpha"].CUID}
}

func TestDiscoverRoot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
		err    string
	}{
		{name: "RFC 8040 example", status: 200, want: "/restconf",
			body: `<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link rel='restconf' href='/restconf'/></XRD>`},
		{name: "another root, other links first", status: 200, want: "/top/restconf",
			body: `<?xml version='1.0' encoding='UTF-8'?>
<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>
  <Link rel='lrdd' href='/lrdd'/>
  <Link rel='restconf' href='/top/restconf/'/>
</XRD>`},
		{name: "relative href", status: 200, want: "/api",
			body: `<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link rel='restconf' href='api'/></XRD>`},
		{name: "no host-meta", status: 404, body: "not found", want: DefaultRoot},
		{name: "no restconf link", status: 200, want: DefaultRoot,
			body: `<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link rel='lrdd' href='/x'/></XRD>`},
		{name: "not XML", status: 200, body: "{}", want: DefaultRoot},
		{name: "root on another server", status: 200, err: "points the RESTCONF root to another server (192.0.2.1:443)",
			body: `<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'><Link rel='restconf' href='https://192.0.2.1:443/restconf'/></XRD>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hostMetaServer(t, tc.status, tc.body)
			c, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			root, err := c.Root(ctx)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Root() = %q, %v; want an error with %q", root, err, tc.err)
				}
				return
			}
			if err != nil || root != tc.want {
				t.Fatalf("Root() = %q, %v; want %q", root, err, tc.want)
			}
		})
	}
}

func TestNewChecksConfig(t *testing.T) {
	cert := tls.Certificate{Certificate: [][]byte{{1}}}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "http://127.0.0.1:8443", CUID: "c", Certificate: cert}, "want https://HOST:PORT"},
		{Config{URL: "127.0.0.1:8443", CUID: "c", Certificate: cert}, "want https://HOST:PORT"},
		{Config{URL: "https://127.0.0.1:8443", Certificate: cert}, "a cuid is required"},
		{Config{URL: "https://127.0.0.1:8443", CUID: "c"}, "client certificate is required"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}
