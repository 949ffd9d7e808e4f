package stage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// lockRetry is how often LockFile retries a held lock: flock has no wake-up
// event that can be combined with ctx, so a held lock is polled.
const lockRetry = 50 * time.Millisecond

// LockFile takes an exclusive flock on path (created if needed) and returns
// the function that releases it. Several llorch processes may share one
// cache directory; flock makes them wait for each other and dies with its
// holder, so a killed process never leaves a stale lock. onWait, when not
// nil, is called once if the lock is held by someone else.
func LockFile(ctx context.Context, path string, onWait func()) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the directory for lock %s: %w", path, err)
	}
	var ticker *time.Ticker
	for {
		unlock, ok, err := TryLockFile(path)
		if err != nil || ok {
			if ticker != nil {
				ticker.Stop()
			}
			return unlock, err
		}
		if ticker == nil {
			ticker = time.NewTicker(lockRetry)
			if onWait != nil {
				onWait()
			}
		}
		select {
		case <-ctx.Done():
			ticker.Stop()
			return nil, fmt.Errorf("waiting for lock %s, held by another llorch process: %w", path, ctx.Err())
		case <-ticker.C:
		}
	}
}

// TryLockFile takes the exclusive flock on path without waiting: ok is
// false when another process holds it.
func TryLockFile(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("opening lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, true, nil
}
