//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "give a command and a lab"},
		{[]string{"run", "elsewhere"}, `unknown command "run elsewhere"`},
		{[]string{"export", "containerlab", "extra"}, "unexpected"},
		{[]string{"run", "scrubbing", "--nope"}, "flag provided but not defined"},
		{[]string{"run", "escalation", "extra"}, `run escalation: unexpected ["extra"]`},
		{[]string{"screenshot", "extra"}, `screenshot: unexpected ["extra"]`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestRunNeedsBinaries: as root, a --bin without the three binaries is
// refused before any namespace is made, naming what is missing.
func TestRunNeedsBinaries(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: as another user the root check answers first (TestNotRoot)")
	}
	err := run(context.Background(), []string{"run", "scrubbing", "--bin", t.TempDir()}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no dotsd, scrubd, dotsctl (run make build, or make lab)") {
		t.Errorf("got %v", err)
	}
}

// TestNotRoot runs the command as an unprivileged user (nobody, when the
// test is root; the test's own user otherwise) and checks what it says.
func TestNotRoot(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // nobody must reach the binary
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "dotslab")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, "run", "scrubbing", "--bin", dir)
	cmd.Dir = dir
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err == nil || strings.TrimSpace(string(out)) != "dotslab: needs root (network namespaces); run: sudo make lab" {
		t.Errorf("exit %v, output %q", err, out)
	}
}

func TestExportContainerlab(t *testing.T) {
	file := filepath.Join(t.TempDir(), "lab", "scrubbing.clab.yml")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"export", "containerlab", "--out", file}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(b), "name: levee-scrubbing") || !strings.Contains(out.String(), "containerlab deploy -t "+file) {
		t.Errorf("%v\n%s\n%s", err, b, out.String())
	}
}
