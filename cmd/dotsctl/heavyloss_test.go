package main

import (
	"os"
	"testing"
)

// TestHeavyLoss: heavy-loss: true in the configuration, or --heavy-loss
// before the command, turns on dotsclient's HeavyLoss; it is off without
// either, and a command with it gets its answer over a real session.
func TestHeavyLoss(t *testing.T) {
	e := newCtlEnv(t)
	base, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		yaml string
		flag bool
		want bool
	}{
		{"default", "", false, false},
		{"configuration", "heavy-loss: true\n", false, true},
		{"configuration false", "heavy-loss: false\n", false, false},
		{"flag", "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(e.config, append(append([]byte(nil), base...), tc.yaml...), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadCtlConfig(e.config)
			if err != nil {
				t.Fatal(err)
			}
			cc, err := (&globals{heavyLoss: tc.flag}).clientConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if cc.HeavyLoss != tc.want {
				t.Fatalf("HeavyLoss %v, want %v", cc.HeavyLoss, tc.want)
			}
			args := []string{"status"}
			if tc.flag {
				args = append([]string{"--heavy-loss"}, args...)
			}
			e.ok(t, args...)
		})
	}
	if err := os.WriteFile(e.config, base, 0o600); err != nil {
		t.Fatal(err)
	}
	out := e.ok(t, "--heavy-loss", "mitigate", "--target", "203.0.113.10/32")
	contains(t, "mitigate with --heavy-loss", out, "2.01")
	err = e.fails(t, "mitigate", "--target", "203.0.113.11/32", "--heavy-loss")
	contains(t, "--heavy-loss after the command", err.Error(), "global option")
}
