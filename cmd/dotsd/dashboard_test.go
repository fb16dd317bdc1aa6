package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
)

// TestDevDashboard: `dotsd dev` serves the dashboard with a token file of
// its own (0600), refuses anonymous requests, and the overview counts the
// client's session and mitigation.
func TestDevDashboard(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dash := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, stop := runDevServer(t, "--dir", dir, "--signal-listen", addr, "--dashboard-listen", dash)
	defer stop()
	tokPath := filepath.Join(dir, "dashboard.token")
	fi, err := os.Stat(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", tokPath, fi.Mode().Perm())
	}
	tok := strings.TrimSpace(string(readFile(t, tokPath)))

	alpha := dialAlpha(t, dir, addr)
	expectCode(t, "alpha mitigation", dots.Created)(alpha.Mitigate(reqCtx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.10/32"}, Lifetime: dots.Ptr(int64(3600))}))

	get := func(token string) (int, []byte) {
		req, _ := http.NewRequest("GET", "http://"+dash+"/api/overview", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("anonymous overview: %d, want 401", code)
	}
	code, body := get(tok)
	if code != http.StatusOK {
		t.Fatalf("overview with the dev token: %d %s", code, body)
	}
	var o struct {
		Sessions *struct {
			Clients, Sessions int
		} `json:"sessions"`
		Mitigations struct {
			Total int `json:"total"`
		} `json:"mitigations"`
	}
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if o.Sessions == nil || o.Sessions.Clients != 1 || o.Sessions.Sessions != 1 || o.Mitigations.Total != 1 {
		t.Errorf("overview %s: want alpha's one session and one mitigation", body)
	}
}

// TestDashboardTokenFileMode: dotsd refuses to start with a dashboard
// token file that group or others may read, and check-config says so.
func TestDashboardTokenFileMode(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	_, stop := runDevServer(t, "--dir", dir, "--signal-listen", "127.0.0.1:"+strconv.Itoa(port), "--dashboard-listen", "off")
	stop()
	tokPath := filepath.Join(dir, "readable.token")
	if err := os.WriteFile(tokPath, []byte("0123456789abcdef0123\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "dotsd.yaml")
	cfg := string(readFile(t, cfgPath)) + fmt.Sprintf("dashboard:\n  listen: 127.0.0.1:%d\n  token-file: readable.token\n", freePort(t))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"check-config", cfgPath}, &strings.Builder{}, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("check-config with a world-readable token file: %v, want a refusal naming chmod 600", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a dotsd that started would run until then
	defer cancel()
	err := run(ctx, []string{"--config", cfgPath, "--signal-listen", "127.0.0.1:" + strconv.Itoa(port)}, &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("run with a world-readable token file: %v, want a refusal naming chmod 600", err)
	}
}
