//go:build !linux

package lab

import "syscall"

// dnsSysProcAttr puts a DNS daemon in its own process group (Stop signals
// the group).
func dnsSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
