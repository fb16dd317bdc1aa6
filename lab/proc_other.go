//go:build !linux

package lab

import "syscall"

// sysProcAttr puts a daemon in its own process group (stop signals the group).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
