package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig: any file gives a configuration or an error, never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte("signal: {listen: [\"127.0.0.1:4646\"]}\n"))
	f.Add([]byte("divert:\n  bgp:\n    local-as: 65001\n    neighbors: [{address: 192.0.2.1, peer-as: 1}]\n"))
	f.Add([]byte("clients:\n  - name: a\n    prefixes: [\"203.0.113.0/33\"]\n"))
	f.Add([]byte("divert: {dns: {zones: [{name: x., secret-file: nope}]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "dotsd.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = loadConfig(path)
	})
}
