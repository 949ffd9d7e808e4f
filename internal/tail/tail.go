// Package tail prints the end of a log file and follows it as it grows,
// across the supervisor's log rotation, woken by inotify rather than by
// polling.
package tail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Last writes the last n lines of path to w (all of it when n < 0).
func Last(w io.Writer, path string, n int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = w.Write(lastLines(data, n))
	return err
}

func lastLines(data []byte, n int) []byte {
	if n < 0 {
		return data
	}
	if n == 0 {
		return nil
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	i := end
	for count := 0; i > 0; i-- {
		if data[i-1] == '\n' {
			count++
			if count == n {
				break
			}
		}
	}
	return data[i:]
}

// Follow writes what is appended to path until ctx ends. When the file is
// replaced (rotation renames it away and creates a new one), Follow
// continues with the new file from its start.
func Follow(ctx context.Context, w io.Writer, path string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watching %s: %w", path, err)
	}
	ino := os.NewFile(uintptr(fd), "inotify")
	defer ino.Close()
	// Watch the directory: it sees writes to the file and its replacement.
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path),
		unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM|unix.IN_DELETE); err != nil {
		return fmt.Errorf("watching %s: %w", filepath.Dir(path), err)
	}
	stop := context.AfterFunc(ctx, func() { _ = ino.SetReadDeadline(past) })
	defer stop()

	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	buf := make([]byte, 64*1024)
	events := make([]byte, 4096)
	for {
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if replaced(f, path) {
			nf, err := os.Open(path)
			if err == nil {
				_, _ = io.CopyBuffer(w, f, buf) // the old file's last bytes
				f.Close()
				f = nf
				continue
			}
		}
		if _, err := ino.Read(events); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("watching %s: %w", path, err)
		}
	}
}

// replaced reports whether path now names another file than f.
func replaced(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	if err1 != nil || err2 != nil {
		return false
	}
	return !os.SameFile(a, b)
}

// past is a deadline already passed: setting it wakes a blocked Read.
var past = time.Unix(1, 0)
