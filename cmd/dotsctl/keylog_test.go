package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
)

// TestKeyLog: dotsctl writes the secrets of its handshake to the file of
// key-log, or of SSLKEYLOGFILE, owner-only; each line is one the server
// wrote for the same session.
func TestKeyLog(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  bool // key-log in dotsctl.yaml, else SSLKEYLOGFILE
	}{
		{"key-log", true},
		{"SSLKEYLOGFILE", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var server syncBuffer
			e := newCtlEnvWith(t, dotstest.Options{Mutate: func(o *dotsserver.Options) { o.KeyLogWriter = &server }})
			path := filepath.Join(t.TempDir(), "keys.log")
			t.Setenv("SSLKEYLOGFILE", "")
			if tc.key {
				f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.WriteString("key-log: " + path + "\n")
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
			} else {
				t.Setenv("SSLKEYLOGFILE", path)
			}
			e.ok(t, "status")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key log mode %v, want 0600", fi.Mode().Perm())
			}
			b, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) == 0 || lines[0] == "" {
				t.Fatal("the key log is empty")
			}
			for _, l := range lines {
				if f := strings.Fields(l); len(f) != 3 || len(f[1]) != 64 {
					t.Errorf("not a key log line: %q", l)
				}
				if !strings.Contains(server.String(), l+"\n") {
					t.Errorf("the server wrote no line %q for the session", l)
				}
			}
		})
	}
}
