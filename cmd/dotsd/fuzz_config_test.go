package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeYAML returns the README's yaml blocks that start with key.
func readmeYAML(f *testing.F, key string) []string {
	f.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		if strings.HasPrefix(m[1], key+":") {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		f.Fatalf("README.md has no yaml example starting with %s:", key)
	}
	return out
}

// FuzzLoadConfig: any file gives a configuration or an error, never a
// panic; every error starts with the file's path, and a configuration that
// was accepted validates again.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte(goodConfig + escalationBGP + "escalation:\n  alpha: {steps: [flowspec, rtbh]}\n"))
	f.Add([]byte(fmt.Sprintf(devConfig, devClientsYAML())))
	for _, key := range []string{"escalation", "limits"} {
		for _, block := range readmeYAML(f, key) {
			f.Add([]byte(block))
			f.Add([]byte(goodConfig + block))
			f.Add([]byte(goodConfig + escalationBGP + block))
		}
	}
	f.Add([]byte("signal: {listen: [\"127.0.0.1:4646\"]}\n"))
	f.Add([]byte("divert:\n  bgp:\n    local-as: 65001\n    neighbors: [{address: 192.0.2.1, peer-as: 1}]\n"))
	f.Add([]byte("clients:\n  - name: a\n    prefixes: [\"203.0.113.0/33\"]\n"))
	f.Add([]byte("divert: {dns: {zones: [{name: x., secret-file: nope}]}}\n"))
	f.Add([]byte(goodConfig + "---\nsignal: {}\n"))
	f.Add([]byte(goodConfig + "limits: {max-body-bytes: \"big\"}\n"))
	f.Add([]byte(""))
	// one file per worker, rewritten by each run: a fresh directory per
	// input would cost more than loading the file
	path := filepath.Join(f.TempDir(), "dotsd.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadConfig(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("error does not name the file %s: %v", path, err)
			}
			return
		}
		if err := cfg.validate(path); err != nil {
			t.Fatalf("an accepted configuration fails validation again: %v", err)
		}
	})
}
