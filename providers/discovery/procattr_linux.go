//go:build linux

package discovery

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill a plugin whose llorch died without
// stopping it (SIGKILL, out of memory), so no plugin outlives its host.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
