package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadKeyPair(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cert := writeTemp(t, dir, "cert.pem", f.cliPEM)
	key := writeTemp(t, dir, "key.pem", f.cliKey)
	otherKey := writeTemp(t, dir, "other-key.pem", f.otherCliKey)
	garbage := writeTemp(t, dir, "garbage.pem", []byte("not pem at all\n"))
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, cert, key string
		wantErr         []string // substrings of the error; nil means success
	}{
		{"ok", cert, key, nil},
		{"mismatched key", cert, otherKey, []string{otherKey, cert, "does not match"}},
		{"missing cert", missing, key, []string{missing, "no such file"}},
		{"missing key", cert, missing, []string{missing, "no such file"}},
		{"cert not PEM", garbage, key, []string{garbage, "no PEM"}},
		{"key not PEM", cert, garbage, []string{garbage, "no PEM"}},
		{"key file holds a certificate", cert, cert, []string{cert, "no PRIVATE KEY"}},
		{"cert file holds a key", key, key, []string{key, "no CERTIFICATE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, leaf, err := LoadKeyPair(tt.cert, tt.key)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if leaf.Subject.CommonName != "alice" || pair.PrivateKey == nil || CUID(leaf) != CUID(f.cliLeaf) {
					t.Fatalf("bad key pair: leaf %v", leaf.Subject)
				}
				return
			}
			if err == nil {
				t.Fatal("LoadKeyPair succeeded, want error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	if _, _, err := LoadKeyPair(missing, key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error %v is not fs.ErrNotExist", err)
	}
}

func TestLoadCertPool(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	bundle := writeTemp(t, dir, "bundle.pem", append(append([]byte{}, f.ca.CertPEM...), f.other.CertPEM...))
	single := writeTemp(t, dir, "ca.pem", f.ca.CertPEM)
	keyOnly := writeTemp(t, dir, "key.pem", f.cliKey)
	empty := writeTemp(t, dir, "empty.pem", nil)
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name      string
		paths     []string
		wantErr   string // substring; "" means success
		wantOther bool   // pool trusts the other CA
	}{
		{"bundle", []string{bundle}, "", true},
		{"single", []string{single}, "", false},
		{"several files", []string{single, bundle}, "", true},
		{"no files", nil, "no CA certificate files", false},
		{"missing file", []string{single, missing}, missing, false},
		{"key only", []string{keyOnly}, keyOnly, false},
		{"empty file", []string{empty}, empty, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := LoadCertPool(tt.paths...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
			if _, err := f.cliLeaf.Verify(opts); err != nil {
				t.Errorf("client cert does not verify: %v", err)
			}
			if _, err := f.otherCLeaf.Verify(opts); (err == nil) != tt.wantOther {
				t.Errorf("other CA's client cert: verify err = %v, want trusted %v", err, tt.wantOther)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "secret.pem")
	for i, data := range []string{"first", "second, longer content"} {
		if err := WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if got, _ := os.ReadFile(p); string(got) != data {
			t.Fatalf("content = %q, want %q", got, data)
		}
	}
	checkMode(t, p, 0o600)
	if st, err := os.Stat(filepath.Join(dir, "a")); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("parent dir: %v, mode %v", err, st.Mode())
	}
	if err := WriteFile(filepath.Join(dir, "pub.pem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkMode(t, filepath.Join(dir, "pub.pem"), 0o644)
	entries, _ := os.ReadDir(filepath.Join(dir, "a", "b"))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
	}
}

// snapshot returns the content of every regular file under dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[p], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first, err := Dev(dir, []string{"alice", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	if len(before) != 8 {
		t.Fatalf("Dev wrote %d files, want 8: %v", len(before), before)
	}
	for _, p := range []string{first.CAKeyPath, first.ServerKey, first.Clients["alice"].Key, first.Clients["bob"].Key} {
		checkMode(t, p, 0o600)
	}
	pool, err := LoadCertPool(first.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	_, srvLeaf, err := LoadKeyPair(first.ServerCert, first.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := srvLeaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("server cert for %s: %v", host, err)
		}
	}
	ca, err := LoadCA(first.CAPath, first.CAKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	if d := ca.Cert.NotAfter.Sub(ca.Cert.NotBefore); d < devCAValidity || srvLeaf.NotAfter.Sub(srvLeaf.NotBefore) < devLeafValidity {
		t.Errorf("validity: CA %v, server %v", d, srvLeaf.NotAfter.Sub(srvLeaf.NotBefore))
	}

	steps := []struct {
		name    string
		prepare func()
		clients []string
		changed []string // files expected to differ from the first snapshot
	}{
		{"again", func() {}, []string{"alice", "bob"}, nil},
		{"new client", func() {}, []string{"alice", "bob", "carol"}, nil},
		{"server reissued", func() {
			os.Remove(first.ServerCert)
			os.Remove(first.ServerKey)
		}, []string{"bob"}, []string{first.ServerCert, first.ServerKey}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.prepare()
			got, err := Dev(dir, st.clients)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range st.clients {
				c := got.Clients[name]
				if want, ok := first.Clients[name]; ok && c != want {
					t.Errorf("client %s = %+v, want %+v", name, c, want)
				}
				if len(c.CUID) != 22 {
					t.Errorf("client %s cuid %q", name, c.CUID)
				}
			}
			if len(got.Clients) != len(st.clients) {
				t.Errorf("got %d clients, want %d", len(got.Clients), len(st.clients))
			}
			after := snapshot(t, dir)
			for p, data := range before {
				changed := !bytes.Equal(after[p], data)
				if changed != contains(st.changed, p) {
					t.Errorf("%s changed = %v, want %v", p, changed, !changed)
				}
			}
			before = after
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "clients", "carol", "key.pem")); err != nil {
		t.Error(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDevErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Dev(dir, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	aliceKey := filepath.Join(dir, "clients", "alice", "key.pem")
	os.Remove(aliceKey)
	tests := []struct {
		name    string
		clients []string
		wantErr string
	}{
		{"path traversal", []string{"../evil"}, "../evil"},
		{"slash", []string{"a/b"}, "a/b"},
		{"empty", []string{""}, "empty"},
		{"dot", []string{"."}, "start with"},
		{"cert without key", []string{"alice"}, aliceKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Dev(dir, tt.clients)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenSSLInterop(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH; skipping OpenSSL interop check")
	}
	p, err := Dev(t.TempDir(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	alice := p.Clients["alice"]
	other, err := Dev(t.TempDir(), []string{"mallory"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		wantOK bool
	}{
		{"verify client", []string{"verify", "-CAfile", p.CAPath, alice.Cert}, true},
		{"verify client purpose", []string{"verify", "-purpose", "sslclient", "-CAfile", p.CAPath, alice.Cert}, true},
		{"verify server purpose", []string{"verify", "-purpose", "sslserver", "-CAfile", p.CAPath, p.ServerCert}, true},
		{"foreign client", []string{"verify", "-CAfile", p.CAPath, other.Clients["mallory"].Cert}, false},
		{"read PKCS8 key", []string{"pkey", "-in", alice.Key, "-noout"}, true},
		{"read CA key", []string{"pkey", "-in", p.CAKeyPath, "-noout"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command("openssl", tt.args...).CombinedOutput()
			if (err == nil) != tt.wantOK {
				t.Fatalf("openssl %v: err = %v, want ok %v\n%s", tt.args, err, tt.wantOK, out)
			}
		})
	}
	if _, err := exec.LookPath("basenc"); err != nil {
		t.Log("basenc not on PATH; skipping OpenSSL cuid check")
		return
	}
	script := `openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER |
		openssl dgst -sha256 -binary | head -c 16 | basenc --base64url | tr -d '=\n'`
	out, err := exec.Command("sh", "-c", script, "sh", alice.Cert).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != alice.CUID {
		t.Errorf("OpenSSL-derived cuid %q, Dev reported %q", out, alice.CUID)
	}
}

// TestDevServerHosts checks that the server certificate covers the
// requested hosts: a new PKI at once, an existing one by reissuing only the
// server certificate (keeping what it covered), and that a TLS client
// verifying with the development CA accepts it for those hosts.
func TestDevServerHosts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first, err := Dev(dir, []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if first.ServerReissued != nil {
		t.Errorf("new PKI: ServerReissued %q, want nil", first.ServerReissued)
	}
	before := snapshot(t, dir)

	// Covered already: nothing changes.
	got, err := Dev(dir, []string{"alice"}, "127.0.0.1", "LOCALHOST", "::1")
	if err != nil || got.ServerReissued != nil {
		t.Fatalf("loopback hosts: ServerReissued %q, %v; want nothing reissued", got.ServerReissued, err)
	}

	// New hosts: the server certificate and key are reissued, nothing else.
	got, err = Dev(dir, []string{"alice"}, "127.0.0.2", "dots.example", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.2", "dots.example"}; !slices.Equal(got.ServerReissued, want) {
		t.Errorf("ServerReissued %q, want %q", got.ServerReissued, want)
	}
	after := snapshot(t, dir)
	for p, data := range before {
		changed := !bytes.Equal(after[p], data)
		if want := p == first.ServerCert || p == first.ServerKey; changed != want {
			t.Errorf("%s changed = %v, want %v", p, changed, want)
		}
	}
	if got.Clients["alice"] != first.Clients["alice"] {
		t.Errorf("client identity changed: %+v, was %+v", got.Clients["alice"], first.Clients["alice"])
	}
	checkMode(t, got.ServerKey, 0o600)

	// A later run for another host keeps the hosts added before.
	got, err = Dev(dir, []string{"alice"}, "127.0.0.3")
	if err != nil || !slices.Equal(got.ServerReissued, []string{"127.0.0.3"}) {
		t.Fatalf("third host: ServerReissued %q, %v", got.ServerReissued, err)
	}
	cert, leaf, err := LoadKeyPair(got.ServerCert, got.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := LoadCertPool(got.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "127.0.0.2", "dots.example", "127.0.0.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.4"}); err == nil {
		t.Error("server certificate verifies for 127.0.0.4, which was never asked for")
	}

	// A real TLS handshake on 127.0.0.3, verified against that address.
	l, err := tls.Listen("tcp", "127.0.0.3:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.3: %v", err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS to %s with the development CA: %v", l.Addr(), err)
	}
	c.Close()
}

func TestDevServerHostErrors(t *testing.T) {
	for _, h := range []string{"127.0.0.1:4646", "", "-x.example", "a b"} {
		if _, err := Dev(t.TempDir(), []string{"alice"}, h); err == nil || !strings.Contains(err.Error(), "server host") {
			t.Errorf("Dev with server host %q: %v, want an error about the server host", h, err)
		}
	}
}
