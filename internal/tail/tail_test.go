package tail

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	tests := []struct {
		name string
		data string
		n    int
		want string
	}{
		{"fewer lines than asked", "a\nb\n", 5, "a\nb\n"},
		{"last two of four", "a\nb\nc\nd\n", 2, "c\nd\n"},
		{"no trailing newline", "a\nb\nc", 2, "b\nc"},
		{"zero lines", "a\nb\n", 0, ""},
		{"negative means all", "a\nb\n", -1, "a\nb\n"},
		{"empty file", "", 3, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(lastLines([]byte(tc.data), tc.n)); got != tc.want {
				t.Errorf("lastLines(%q, %d) = %q, want %q", tc.data, tc.n, got, tc.want)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe to read while Follow writes to it, and
// that signals each write.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until out contains want, woken by writes.
func waitFor(ctx context.Context, t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	for !strings.Contains(out.String(), want) {
		select {
		case <-out.wrote:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %q; have %q", want, out.String())
		}
	}
}

func TestFollowSeesAppendsAndRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "engine.log")
	if err := os.WriteFile(path, []byte("old line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out := &syncBuffer{wrote: make(chan struct{}, 1)}
	done := make(chan error, 1)
	followCtx, stop := context.WithCancel(ctx)
	go func() { done <- Follow(followCtx, out, path) }()

	// Follow starts at the end: appends show up, the old line does not.
	appendLine := func(p, line string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	// Keep appending until Follow has opened the file and seen a write.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(out.String(), "first") {
		appendLine(path, "first")
		select {
		case <-out.wrote:
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("Follow never reported an append")
		}
	}
	if strings.Contains(out.String(), "old line") {
		t.Errorf("Follow printed the existing content: %q", out.String())
	}
	// Rotation: rename away, then write a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendLine(path, "after rotation")
	waitFor(ctx, t, out, "after rotation")

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Follow returned %v after its context ended", err)
	}
}

func TestLinesKeepsTheLastOnes(t *testing.T) {
	b := Lines{Max: 3}
	for _, l := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		b.WriteLine(l)
	}
	if got := b.Last(2); got != "f\ng" {
		t.Fatalf("Last(2) = %q", got)
	}
	if got := b.Last(10); got != "e\nf\ng" {
		t.Fatalf("Last(10) = %q, want only the 3 kept", got)
	}
	var empty Lines
	if got := empty.Last(5); got != "" {
		t.Fatalf("empty Last = %q", got)
	}
}
