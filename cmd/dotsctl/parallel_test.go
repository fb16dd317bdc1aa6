package main

import (
	"os"
	"strings"
	"testing"
)

// TestParallelRequests: parallel-requests takes 1 to 32 and reaches the
// session; a value out of range is refused with what to write instead.
func TestParallelRequests(t *testing.T) {
	e := newCtlEnv(t)
	base, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value string
		err   string
	}{
		{"8", ""},
		{"32", ""},
		{"33", "parallel-requests: 33, use 1 to 32"},
		{"-1", "parallel-requests: -1, use 1 to 32"},
	} {
		if err := os.WriteFile(e.config, append(append([]byte(nil), base...), "parallel-requests: "+tc.value+"\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadCtlConfig(e.config)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parallel-requests %s: %v, want %q", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("parallel-requests %s: %v", tc.value, err)
		}
		cc, err := cfg.clientConfig()
		if err != nil || cc.ParallelRequests != int(cfg.ParallelRequests) || cc.ParallelRequests == 0 {
			t.Fatalf("parallel-requests %s: client config %d, %v", tc.value, cc.ParallelRequests, err)
		}
		e.ok(t, "status") // a session with the setting works
	}
}
