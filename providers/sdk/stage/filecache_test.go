package stage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileCache(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "model.gguf", []byte("v1"), 0o644)
	other := writeFile(t, dir, "gone.gguf", []byte("x"), 0o644)
	cachePath := filepath.Join(dir, "cache", "digests.json")
	ctx := context.Background()
	stat := func(p string) os.FileInfo {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}

	c := NewFileCache(cachePath)
	if _, ok := c.Get(file, stat(file)); ok {
		t.Fatal("an empty cache had a hit")
	}
	if err := c.Put(ctx, file, stat(file), "digest-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, other, stat(other), "digest-2"); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get(file, stat(file)); !ok || v != "digest-1" {
		t.Errorf("get = %q, %v", v, ok)
	}

	t.Run("another process sees the entries", func(t *testing.T) {
		if v, ok := NewFileCache(cachePath).Get(file, stat(file)); !ok || v != "digest-1" {
			t.Errorf("get from a fresh cache = %q, %v", v, ok)
		}
	})

	t.Run("a changed file misses", func(t *testing.T) {
		if err := os.Chtimes(file, time.Now(), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Get(file, stat(file)); ok {
			t.Error("a file with a new mtime still hit the cache")
		}
	})

	t.Run("entries of removed files are dropped on the next write", func(t *testing.T) {
		if err := os.Remove(other); err != nil {
			t.Fatal(err)
		}
		if err := c.Put(ctx, file, stat(file), "digest-3"); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(cachePath)
		if strings.Contains(string(data), "gone.gguf") || !strings.Contains(string(data), "digest-3") {
			t.Errorf("cache file = %s", data)
		}
	})

	t.Run("a corrupt cache file reads as empty and is rewritten", func(t *testing.T) {
		if err := os.WriteFile(cachePath, []byte("{not json"), 0o644); err != nil {
			t.Fatal(err)
		}
		fresh := NewFileCache(cachePath)
		if _, ok := fresh.Get(file, stat(file)); ok {
			t.Error("a corrupt cache file had a hit")
		}
		if err := fresh.Put(ctx, file, stat(file), "digest-4"); err != nil {
			t.Fatal(err)
		}
		if v, ok := NewFileCache(cachePath).Get(file, stat(file)); !ok || v != "digest-4" {
			t.Errorf("after rewrite: %q, %v", v, ok)
		}
	})

	t.Run("writes leave no temporary files", func(t *testing.T) {
		entries, _ := os.ReadDir(filepath.Dir(cachePath))
		for _, e := range entries {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Errorf("temporary file left: %s", e.Name())
			}
		}
	})
}

func TestLockFileWaitsForItsHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := LockFile(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := LockFile(ctx, path, func() { close(waited) })
		done <- err
	}()
	<-waited // the second taker found the lock held
	cancel()
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "held by another llorch process: context canceled") {
		t.Errorf("error = %v", err)
	}

	unlock()
	again, err := LockFile(context.Background(), path, func() { t.Error("a released lock was reported as held") })
	if err != nil {
		t.Fatal(err)
	}
	again()
}

func TestHumanBytes(t *testing.T) {
	tests := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 9_066_496: "8.6 MiB", 4_683_000_000: "4.4 GiB"}
	for n, want := range tests {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFileCacheMissRereadsTheFileOnlyWhenItChanged(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cachePath := filepath.Join(dir, "cache", "digests.json")
	stat := func(p string) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	model := writeFile(t, dir, "model.gguf", []byte("v1"), 0o644)
	// other.gguf has model.gguf's size and mtime, and a name as long.
	other := writeFile(t, dir, "other.gguf", []byte("v1"), 0o644)
	if err := os.Chtimes(other, time.Now(), stat(model).ModTime()); err != nil {
		t.Fatal(err)
	}

	c := NewFileCache(cachePath)
	if _, ok := c.Get(model, stat(model)); ok {
		t.Fatal("an empty cache had a hit")
	}
	if err := NewFileCache(cachePath).Put(ctx, model, stat(model), "digest-1"); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get(model, stat(model)); !ok || v != "digest-1" {
		t.Fatalf("after another process wrote the file: %q, %v", v, ok)
	}

	// Rewrite the file in place, keeping its size and mtime, so that its
	// entry names other.gguf: only a reader that reads it again sees it.
	before := stat(cachePath)
	data, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cachePath, []byte(strings.Replace(string(data), "model.gguf", "other.gguf", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cachePath, time.Now(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get(other, stat(other)); ok {
		t.Errorf("a miss read the unchanged cache file again (got %q)", v)
	}
	if v, ok := NewFileCache(cachePath).Get(other, stat(other)); !ok || v != "digest-1" {
		t.Fatalf("a fresh reader of the rewritten file: %q, %v", v, ok)
	}
	// A new mtime is a change: the next miss reads the file.
	if err := os.Chtimes(cachePath, time.Now(), before.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get(other, stat(other)); !ok || v != "digest-1" {
		t.Errorf("a miss after the file changed: %q, %v", v, ok)
	}
}
