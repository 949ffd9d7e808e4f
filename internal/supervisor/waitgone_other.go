//go:build !linux

package supervisor

import (
	"context"
	"errors"
	"syscall"
)

// processWatch cannot wait for a process that is not a child without
// pidfds; callers already saw the supervisor close its socket, which is the
// best signal left.
type processWatch struct{}

func watchProcess(pid int) (processWatch, error) { return processWatch{}, nil }

func (processWatch) wait(ctx context.Context) error { return ctx.Err() }

func (w processWatch) kill(pid int) error { return w.signal(pid, syscall.SIGKILL) }

func (processWatch) signal(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

func (processWatch) close() {}

func waitGone(ctx context.Context, pid int) error { return ctx.Err() }
