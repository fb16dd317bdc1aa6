package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/pki"
)

// watchRun is a dotsctl status --watch running in a goroutine.
type watchRun struct {
	out, errOut syncBuffer
	cancel      context.CancelFunc
	done        chan error
}

func (e *ctlEnv) startWatch(t *testing.T, args ...string) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRun{cancel: cancel, done: make(chan error, 1)}
	go func() {
		w.done <- run(ctx, append([]string{"--config", e.config}, args...), &w.out, &w.errOut)
	}()
	t.Cleanup(cancel)
	return w
}

// stop cancels the watch, which must end with nil.
func (w *watchRun) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("status --watch ended with %v after cancel; stderr:\n%s", err, w.errOut.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("status --watch did not stop when its context was cancelled")
	}
}

// lines decodes the JSON lines printed so far.
func (w *watchRun) lines(t *testing.T) []watchLine {
	t.Helper()
	var out []watchLine
	for _, l := range strings.Split(strings.TrimSuffix(w.out.String(), "\n"), "\n") {
		if l == "" {
			continue
		}
		var wl watchLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wl); err != nil {
			t.Fatalf("watch line %q is not one JSON object: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, wl.Time); err != nil {
			t.Fatalf("watch line %q: time: %v", l, err)
		}
		out = append(out, wl)
	}
	return out
}

// waitLine waits for a JSON line whose mitigation mid satisfies ok and
// returns that row.
func (w *watchRun) waitLine(t *testing.T, what string, mid uint32, ok func(watchRow) bool) watchRow {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for {
		for _, l := range w.lines(t) {
			for _, r := range l.Mitigations {
				if r.MID == mid && ok(r) {
					return r
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no such line in:\n%s\nstderr:\n%s", what, w.out.String(), w.errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alphaCUID(t *testing.T, s *dotstest.Server) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(s.ClientCert(t, "alpha").Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return dots.CUIDFromSPKI(leaf.RawSubjectPublicKeyInfo)
}

// TestStatusWatchJSON follows all mitigations with -o json from before the
// first one exists: creation, counters (and the client's rate once two
// samples exist), withdrawal, then a clean end.
func TestStatusWatchJSON(t *testing.T) {
	e := newCtlEnv(t)
	w := e.startWatch(t, "--timeout", "5s", "-o", "json", "status", "--watch", "--interval", "1s")
	waitFor(t, "watch, first answer", &w.out, `"code":"4.04"`)

	e.ok(t, "mitigate", "--target", "203.0.113.30/32")
	r := w.waitLine(t, "mitigation created", 1, func(r watchRow) bool { return r.Status == "attack-mitigation-in-progress" })
	if r.PktsDropped != nil || r.BytesDropped != nil || r.PpsDropped != nil || r.BpsDropped != nil || r.Measured != nil {
		t.Fatalf("unmeasured mitigation shows counters: %+v", r)
	}
	if r.Targets != "203.0.113.30/32" || r.Lifetime == nil || *r.Lifetime <= 0 {
		t.Fatalf("row %+v: want the target and the remaining lifetime", r)
	}

	// Counters change without a notification: the periodic GET shows them.
	svc, key := e.srv.Srv.Service(), divert.Key{CUID: alphaCUID(t, e.srv), MID: 1}
	svc.Measured("scrub", key, divert.Counters{PktsDropped: 100, BytesDropped: 150_000, PPSDropped: 100, BPSDropped: 1_200_000})
	r = w.waitLine(t, "first counters", 1, func(r watchRow) bool { return r.PktsDropped != nil })
	if *r.PktsDropped != 100 || *r.BytesDropped != 150_000 || *r.PpsDropped != 100 || *r.BpsDropped != 1_200_000 {
		t.Fatalf("first counters: %+v", r)
	}
	if r.Measured != nil {
		t.Fatalf("a rate measured from one sample: %+v", r.Measured)
	}
	svc.Measured("scrub", key, divert.Counters{PktsDropped: 1100, BytesDropped: 1_650_000, PPSDropped: 900, BPSDropped: 10_800_000})
	r = w.waitLine(t, "second counters", 1, func(r watchRow) bool { return r.PktsDropped != nil && *r.PktsDropped == 1100 })
	m := r.Measured
	if m == nil || m.Seconds < 0.5 || m.PPS <= 0 || m.PPS > 1000/m.Seconds+1e-6 {
		t.Fatalf("measured rate after two samples: %+v", m)
	}
	if ratio := m.BPS / m.PPS; ratio < 12000-1e-6 || ratio > 12000+1e-6 {
		t.Fatalf("measured %+v: bit/s per packet/s %v, want 12000 (1500-byte packets)", m, ratio)
	}
	if *r.PpsDropped != 900 {
		t.Fatalf("server rate %v, want 900", *r.PpsDropped)
	}

	e.ok(t, "withdraw", "1")
	w.waitLine(t, "withdrawn", 1, func(r watchRow) bool { return r.Status == "dots-client-withdrawn-mitigation" })
	w.stop(t)
	if strings.Contains(w.out.String(), "\x1b") {
		t.Fatalf("escape codes in JSON lines:\n%q", w.out.String())
	}
}

// TestStatusWatchReconnect: when the server goes away the watch says so and
// retries; once the server is back it shows the mitigations again.
func TestStatusWatchReconnect(t *testing.T) {
	e := newCtlEnv(t)
	e.ok(t, "mitigate", "--target", "203.0.113.31/32")
	w := e.startWatch(t, "--timeout", "2s", "status", "--watch", "--interval", "1s")
	waitFor(t, "watch, first answer", &w.out, "attack-mitigation-in-progress")

	e.srv.Srv.Close()
	waitFor(t, "watch, server gone", &w.out, "reconnecting (")
	e.restartServer(t)
	out := w.out.String()
	lost := strings.LastIndex(out, "reconnecting (")
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(w.out.String()[lost:], "attack-mitigation-in-progress") {
		if time.Now().After(deadline) {
			t.Fatalf("the watch did not come back after the server did:\n%s", w.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.stop(t)
	out = w.out.String()
	contains(t, "watch output", out, "--- ", "next attempt in")
	if strings.Contains(out, "\x1b") {
		t.Fatalf("escape codes although stdout is no terminal:\n%q", out)
	}
}

func TestWatchView(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 50, 0, 0, time.UTC)
	resp := func(pkts, octets uint64) *dotsclient.Response {
		s := dots.Scope{MID: dots.Ptr[uint32](7), Status: dots.Ptr(dots.StatusInProgress), Lifetime: dots.Ptr[int64](3600),
			TargetPrefix: []string{"203.0.113.7/32"}, Note: "scrubbing at scrub-a"}
		if pkts > 0 {
			s.PktsDropped, s.BytesDropped = dots.Ptr(dots.U64(pkts)), dots.Ptr(dots.U64(octets))
			s.PpsDropped, s.BpsDropped = dots.Ptr(dots.U64(12_300)), dots.Ptr(dots.U64(147_600_000))
		}
		return &dotsclient.Response{Code: dots.Content, Body: &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{s}}}}
	}
	var b bytes.Buffer
	v := &view{out: &b, tty: true, header: "HEADER", rates: newRateLog(time.Second)}
	if err := v.show(at, resp(0, 0)); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if !strings.HasPrefix(got, clearScreen+"HEADER\n") {
		t.Fatalf("a terminal is not redrawn: %q", got)
	}
	r := row(t, got, 7)
	if f := strings.Fields(r); len(f) != 12 || f[4] != "-" || f[5] != "-" || f[6] != "-" || f[7] != "-" || f[8] != "-" {
		t.Fatalf("unmeasured row %q: want - for each counter and rate", r)
	}
	b.Reset()
	v.show(at.Add(time.Second), resp(1_000_000, 1_500_000_000))
	contains(t, "first counters", row(t, b.String(), 7), "1.00M", "1.50 GB", "12.3k pps", "148 Mbit/s")
	b.Reset()
	v.show(at.Add(1500*time.Millisecond), resp(1_000_100, 1_500_150_000)) // too close: no sample
	if f := strings.Fields(row(t, b.String(), 7)); len(f) < 12 || f[11] != "-" {
		t.Fatalf("a rate from samples 0.5 s apart: %q", f)
	}
	b.Reset()
	v.show(at.Add(3*time.Second), resp(1_024_600, 1_536_900_000))
	contains(t, "measured", row(t, b.String(), 7), "12.3k pps, 148 Mbit/s  scrubbing at scrub-a")

	b.Reset()
	if err := v.reconnecting(at, errors.New("the server closed the session"), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	contains(t, "reconnecting on a terminal", b.String(), clearScreen, "12.3k pps, 148 Mbit/s", "reconnecting (the server closed the session): next attempt in 2s")

	for v, want := range map[float64]string{0: "0", 999: "999", 999.6: "1.00k", 12_345: "12.3k", 1_012_500: "1.01M", 150e6: "150M", 4.2e9: "4.20G"} {
		if got := packets(v); got != want {
			t.Errorf("packets(%v) = %q, want %q", v, got, want)
		}
	}
	if got := bitRate(800); got != "800 bit/s" {
		t.Errorf("bitRate(800) = %q", got)
	}
}

func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, w := range map[string]io.Writer{"buffer": &bytes.Buffer{}, os.DevNull: null, "a file": file} {
		if isTerminal(w) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
	// The master side of a pseudo-terminal has terminal attributes.
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	if !isTerminal(ptm) {
		t.Error("a pseudo-terminal is not taken for a terminal")
	}
}

// TestStatusWatchRefused: a refusal of the first request ends the watch
// with the server's diagnostic; retrying would not change it.
func TestStatusWatchRefused(t *testing.T) {
	e := newCtlEnv(t)
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	// alpha speaking with beta's cuid: 4.03 (a certificate of no client
	// domain is refused in the handshake and gets no answer at all).
	beta := e.srv.Dev.Clients["beta"].CUID
	e.config = filepath.Join(e.dir, "spoof.yaml")
	if err := os.WriteFile(e.config, append(b, []byte("cuid: "+beta+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	err = e.fails(t, "status", "--watch")
	contains(t, "refused watch", err.Error(), "status --watch", "4.03", beta)
}

// restartServer starts a new server on e's address and store, once the
// first one is closed.
func (e *ctlEnv) restartServer(t *testing.T) {
	t.Helper()
	cert, _, err := pki.LoadKeyPair(e.srv.Dev.ServerCert, e.srv.Dev.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	again, err := dotsserver.New(dotsserver.Options{Listen: []string{e.addr}, Certificate: cert, ClientCAs: e.srv.Roots,
		Domains: dotstest.Domains(), Store: e.srv.Store})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Close) // before the store is closed
}
