package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dots/levee/pki"
)

// TestCertExpiry: the server certificate (60 days) and the client CA (100
// days) are each warned about at start and at every daily check once
// they end within 30 days or have ended, and not before; a tick checks
// again. NotAfter tells
// the end of each kind and that of the client certificates seen.
func TestCertExpiry(t *testing.T) {
	good := strings.Replace(goodConfig, "client-cas: [ca.pem, /etc/levee/other-ca.pem]", "client-cas: [ca.pem]", 1)
	cfg, err := loadConfig(checkDir(t, good))
	if err != nil {
		t.Fatal(err)
	}
	server, err := pki.LoadCerts("server", cfg.TLS.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCerts("ca", cfg.TLS.ClientCAs[0])
	if err != nil {
		t.Fatal(err)
	}
	start, day := time.Now(), 24*time.Hour
	var mu sync.Mutex
	now := start
	var out syncWriter
	client := start.Add(5 * day)
	e := &certExpiry{log: slog.New(slog.NewTextHandler(&out, nil)), config: func() *fileConfig { return cfg },
		now:     func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		clients: func() (time.Time, bool) { return client, true }}
	ticks := make(chan time.Time)
	stop := watchExpiry(context.Background(), e, ticks) // checks at once

	for _, step := range []struct {
		at           time.Duration // since start
		server, cas  int           // warnings so far
		serverDetail string
	}{
		{0, 0, 0, ""},
		{29 * day, 0, 0, ""},
		{45 * day, 1, 0, "expires in 14 days"},
		{46 * day, 2, 0, "expires in 13 days"},
		{75 * day, 3, 1, "expired on"},
	} {
		if step.at > 0 {
			mu.Lock()
			now = start.Add(step.at)
			mu.Unlock()
			e.check() // as a daily tick does (below)
		}
		if n := strings.Count(out.String(), "kind="+expiryServer); n != step.server {
			t.Fatalf("day %d: %d server certificate warnings, want %d:\n%s", step.at/day, n, step.server, out.String())
		}
		if n := strings.Count(out.String(), "kind="+expiryCA); n != step.cas {
			t.Fatalf("day %d: %d CA warnings, want %d:\n%s", step.at/day, n, step.cas, out.String())
		}
		if !strings.Contains(out.String(), step.serverDetail) {
			t.Fatalf("day %d: no %q in:\n%s", step.at/day, step.serverDetail, out.String())
		}
	}
	ticks <- now
	stop() // waits for the tick's check
	if n := strings.Count(out.String(), "kind="+expiryServer); n != 4 {
		t.Errorf("a tick did not check again: %d server certificate warnings, want 4", n)
	}
	got := e.NotAfter()
	want := map[string]time.Time{expiryServer: server[0].NotAfter, expiryCA: ca[0].NotAfter, expiryClient: client}
	for k, w := range want {
		if !got[k].Equal(w) {
			t.Errorf("NotAfter()[%s] = %v, want %v", k, got[k], w)
		}
	}
}
