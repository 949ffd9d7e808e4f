package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// processWatch holds a pidfd: it names the process itself, not its number,
// so once the process has exited and been reaped, a new process given the
// same pid (pids wrap at 32768 on many machines) is never mistaken for it.
// The zero value watches nothing: wait returns at once.
type processWatch struct{ f *os.File }

// watchProcess pins process pid for a later wait. A process already gone,
// or a kernel without pidfds, gives a watch that waits for nothing.
func watchProcess(pid int) (processWatch, error) {
	if pid <= 0 || pid == os.Getpid() {
		return processWatch{}, nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			return processWatch{}, nil // already gone, or a kernel without pidfds
		}
		return processWatch{}, fmt.Errorf("opening pidfd: %w", err)
	}
	return processWatch{f: os.NewFile(uintptr(fd), "pidfd")}, nil
}

// wait returns once the process has exited, without polling: a pidfd
// becomes readable when the process terminates (it works for processes
// that are not our children, unlike wait(2)).
func (w processWatch) wait(ctx context.Context) error {
	if w.f == nil {
		return nil
	}
	rc, err := w.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("polling pidfd: %w", err)
	}
	_ = w.f.SetReadDeadline(time.Time{}) // an earlier wait's cancellation
	stop := context.AfterFunc(ctx, func() { _ = w.f.SetReadDeadline(time.Now()) })
	defer stop()
	err = rc.Read(func(fd uintptr) bool {
		// Ask the pidfd itself each time: Read clears any readiness the
		// runtime poller saw before this call (the exit may well have come
		// while the stop request was out), and the poller only reports
		// edges after that.
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
		return err == nil && n > 0
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("polling pidfd: %w", err)
	}
	return nil
}

// kill sends SIGKILL to the watched process, through its pidfd so that a
// process given its pid after it was reaped is never hit; pid is used only
// when there is no pidfd. A process already gone is not an error.
func (w processWatch) kill(pid int) error { return w.signal(pid, unix.SIGKILL) }

// signal is kill with any signal.
func (w processWatch) signal(pid int, sig unix.Signal) error {
	var err error
	if w.f == nil {
		err = unix.Kill(pid, sig)
	} else {
		rc, cerr := w.f.SyscallConn()
		if cerr != nil {
			return cerr
		}
		if cerr := rc.Control(func(fd uintptr) { err = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); cerr != nil {
			return cerr
		}
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

func (w processWatch) close() {
	if w.f != nil {
		_ = w.f.Close()
	}
}

// waitGone waits until process pid has exited. Only for a pid known to
// name the process meant until the call (a child not yet reaped, or a
// process that cannot have exited yet); otherwise pin it first with
// watchProcess.
func waitGone(ctx context.Context, pid int) error {
	w, err := watchProcess(pid)
	if err != nil {
		return err
	}
	defer w.close()
	return w.wait(ctx)
}
