package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/pki"
)

// runDevServer runs `dotsd dev` in-process until "dotsd ready" and returns
// its stderr and a function that stops it.
func runDevServer(t *testing.T, args ...string) (*logBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &logBuffer{ready: make(chan struct{})}
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = run(ctx, withDataListen(t, append([]string{"dev"}, args...)), &bytes.Buffer{}, stderr)
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("dotsd dev %q did not stop within 20 s", args)
		}
		if runErr != nil {
			t.Errorf("dotsd dev %q: %v", args, runErr)
		}
	}
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-stderr.ready:
	case <-done:
		t.Fatalf("dotsd dev %q: %v\n%s", args, runErr, stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("dotsd dev %q not ready within 20 s\n%s", args, stderr)
	}
	return stderr, stop
}

// TestDevSignalListen checks that `dotsd dev --signal-listen ADDR` serves a
// certificate a client verifies for ADDR, also when the development
// directory was made for another address: then the server certificate is
// reissued from the same CA and the clients keep their identities.
func TestDevSignalListen(t *testing.T) {
	dir := t.TempDir()
	port := strconv.Itoa(freePort(t))
	_, stop := runDevServer(t, "--dir", dir, "--signal-listen", net.JoinHostPort("127.0.0.1", port))
	stop()
	before := map[string][]byte{}
	for _, f := range []string{"ca.pem", "ca-key.pem", "clients/alpha/cert.pem", "clients/beta/key.pem"} {
		before[f] = readFile(t, filepath.Join(dir, f))
	}

	addr := net.JoinHostPort("127.0.0.2", port)
	stderr, stop := runDevServer(t, "--dir", dir, "--signal-listen", addr)
	defer stop()
	if !strings.Contains(stderr.String(), "did not cover 127.0.0.2; reissued") || !strings.Contains(stderr.String(), "client identities are kept") {
		t.Errorf("stderr does not say that the server certificate was reissued for 127.0.0.2:\n%s", stderr)
	}
	for f, data := range before {
		if !bytes.Equal(readFile(t, filepath.Join(dir, f)), data) {
			t.Errorf("%s changed; only the server certificate should be reissued", f)
		}
	}
	// The dotsclient verifies the server certificate against 127.0.0.2
	// with the development CA, over DTLS or TLS.
	c := dialAlpha(t, dir, addr)
	r, err := c.Status(reqCtx(t), nil, "")
	if err != nil {
		t.Fatalf("GET all at %s: %v", addr, err)
	}
	if r.Code != dots.NotFound && r.Code != dots.Content {
		t.Errorf("GET all at %s: %s", addr, r.Code)
	}
	// And the written dotsctl configuration names that address.
	if ctl := readFile(t, filepath.Join(dir, "clients", "alpha", "dotsctl.yaml")); !bytes.Contains(ctl, []byte(addr)) {
		t.Errorf("dotsctl.yaml does not name %s:\n%s", addr, ctl)
	}
	_, leaf, err := pki.LoadKeyPair(filepath.Join(dir, "server", "cert.pem"), filepath.Join(dir, "server", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "127.0.0.2"}; !slices.Equal(ips, want) || !slices.Equal(leaf.DNSNames, []string{"localhost"}) {
		t.Errorf("server certificate SANs: IPs %q, DNS %q; want IPs %q and localhost", ips, leaf.DNSNames, want)
	}
}

func TestDevServerHostsFromListen(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		want   []string
	}{
		{[]string{"127.0.0.1:4646"}, []string{"127.0.0.1"}},
		{[]string{"127.0.0.2:4646", "[::1]:4646"}, []string{"127.0.0.2", "::1"}},
		{[]string{"[fe80::1%lo]:4646"}, []string{"fe80::1"}},
		{[]string{"dots.example:4646"}, []string{"dots.example"}},
	} {
		if got := serverHosts(tc.listen); !slices.Equal(got, tc.want) {
			t.Errorf("serverHosts(%q) = %q, want %q", tc.listen, got, tc.want)
		}
	}
	// All interfaces: at least the loopback address, no unspecified one.
	for _, l := range []string{":4646", "0.0.0.0:4646", "[::]:4646"} {
		got := serverHosts([]string{l})
		if !slices.Contains(got, "127.0.0.1") || slices.Contains(got, "0.0.0.0") || slices.Contains(got, "::") {
			t.Errorf("serverHosts(%q) = %q, want this host's addresses with 127.0.0.1", l, got)
		}
	}
}

func TestDevBadSignalListen(t *testing.T) {
	err := run(context.Background(), []string{"dev", "--dir", t.TempDir(), "--signal-listen", "127.0.0.2"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--signal-listen") {
		t.Fatalf("dev --signal-listen without port: %v, want an error naming --signal-listen", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
