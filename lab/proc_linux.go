package lab

import "syscall"

// sysProcAttr puts a daemon in its own process group (stop signals the
// group) and has the kernel kill it if the test binary dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
