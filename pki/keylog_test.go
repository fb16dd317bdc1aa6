package pki_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/levee-dots/levee/pki"
)

// TestOpenKeyLog: the key log is its owner's only, whether it is created
// or was there with a wider mode, and lines are appended.
func TestOpenKeyLog(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string
		mode   os.FileMode
	}{
		{"new file", "", 0},
		{"existing world-readable file", "CLIENT_RANDOM aa bb\n", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.log")
			if tc.mode != 0 {
				if err := os.WriteFile(path, []byte(tc.before), tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			k, err := pki.OpenKeyLog(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.Write([]byte("CLIENT_RANDOM 01 02\n")); err != nil {
				t.Fatal(err)
			}
			if err := k.Close(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			b, _ := os.ReadFile(path)
			if want := tc.before + "CLIENT_RANDOM 01 02\n"; string(b) != want {
				t.Errorf("file %q, want %q", b, want)
			}
		})
	}
}
