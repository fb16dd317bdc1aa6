package lab

import "syscall"

// dnsSysProcAttr puts a DNS daemon in its own process group (Stop signals
// the group) and has the kernel kill it if the test binary dies first.
func dnsSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
