package fakeengine

import (
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dieBySignal ends the process by sig's default action, the way a C program
// dies of it, so a parent sees "killed by SIGABRT" rather than an exit
// status. Neither signal.Reset nor raising the signal is enough: the Go
// runtime turns SIGABRT into a goroutine dump and exit status 2. So the
// kernel's action is set back to SIG_DFL directly and the signal is sent to
// this very thread, which receives it on the way out of the syscall.
func dieBySignal(sig syscall.Signal) {
	runtime.LockOSThread()
	// No core file: the real server would dump one, but tests must not
	// leave cores behind (this also stops a core_pattern pipe helper).
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// An all-zero kernel sigaction is SIG_DFL with no flags and an empty mask
	// whatever the architecture's field order; 64 bytes cover every layout.
	var act [64]byte
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	if errno == 0 {
		set := uint64(1) << (uint(sig) - 1)
		_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_UNBLOCK, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0)
		_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	}
	// Only reached if the kernel refused: report the death as a shell would.
	os.Exit(128 + int(sig))
}
