//go:build linux

package main

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAlive(t *testing.T) {
	if !alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skip("no true(1):", err)
	}
	pid := cmd.Process.Pid
	// Exited but not yet reaped (WNOWAIT), it is a zombie, as a killed
	// bench is until its parent waits for it: not alive.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("exited child %d still counts as alive", pid)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("reaped child %d still counts as alive", pid)
	}
}
