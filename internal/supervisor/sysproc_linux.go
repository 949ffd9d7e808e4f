package supervisor

import "syscall"

// engineSysProcAttr puts the engine in its own process group and kills it
// with SIGKILL when the supervisor's thread that started it dies (see
// ExecSpawner.Start for the thread locking this needs).
func engineSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
