package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waitGone waits until process pid has exited, without polling: a pidfd
// becomes readable when the process terminates (it works for processes
// that are not our children, unlike wait). Without pidfd support it
// returns at once.
func waitGone(ctx context.Context, pid int) error {
	if pid <= 0 || pid == os.Getpid() {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			return nil // already gone, or a kernel without pidfds
		}
		return fmt.Errorf("opening pidfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("polling pidfd: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	first := true
	err = rc.Read(func(uintptr) bool {
		// The runtime poller waits for readability after the first call.
		if first {
			first = false
			return false
		}
		return true
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("polling pidfd: %w", err)
	}
	return nil
}
