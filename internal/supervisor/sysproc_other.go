//go:build unix && !linux

package supervisor

import "syscall"

// engineSysProcAttr puts the engine in its own process group. Without
// Pdeathsig an engine can outlive a supervisor killed with SIGKILL here;
// llorch's supported platform is Linux.
func engineSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
