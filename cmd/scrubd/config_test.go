package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigRefusals(t *testing.T) {
	const good = "listen: 127.0.0.1:4680\ntls: {certificate: c.pem, key: k.pem, client-cas: [ca.pem]}\ninterface: sd0\n"
	cases := []struct{ name, yaml, want string }{
		{"empty", "", "the configuration is empty"},
		{"unknown key", good + "interfaces: x\n", "field interfaces not found"},
		{"no port", strings.Replace(good, "127.0.0.1:4680", "127.0.0.1", 1), "listen:"},
		{"port 0", strings.Replace(good, ":4680", ":0", 1), "listen: \"127.0.0.1:0\" needs a port"},
		{"no interface", strings.Replace(good, "interface: sd0\n", "", 1), "interface:"},
		{"no client CA", strings.Replace(good, "client-cas: [ca.pem]", "client-cas: []", 1), "tls.client-cas:"},
		{"negative bound", good + "bounds: {max-rules: -1}\n", "bounds.max-rules:"},
		{"log level", good + "log: {level: loud}\n", "log.level:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "scrubd.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadConfig(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "scrubd.yaml")
	if err := os.WriteFile(p, []byte(good+"netns: scrub\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(p)
	if err != nil || c.TLS.Certificate != filepath.Join(filepath.Dir(p), "c.pem") || netnsPath(c.NetNS) != "/run/netns/scrub" {
		t.Errorf("good: %+v %v", c, err)
	}
	var stderr bytes.Buffer
	if err := run(context.Background(), nil, &stderr, &stderr); err == nil || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("no --config: %v %q", err, stderr.String())
	}
}
