package local_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/local"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"llorch-lock-holder": lockHolder})
}

// lockHolder is another process taking the state lock: it locks the state
// directory os.Args[1] for operation os.Args[2] on the OS filesystem, prints
// "locked ID", and holds the lock until its standard input closes.
func lockHolder() {
	ctx := context.Background()
	s := local.New(afero.NewOsFs(), os.Args[1], local.Options{Version: "0.1.0"})
	id, err := s.Lock(ctx, state.LockInfo{Operation: os.Args[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("locked %s\n", id)
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := s.Unlock(ctx, id); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("unlocked")
}

type holder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr strings.Builder
	id     string
	done   bool
}

// startHolder runs lockHolder in a new process and waits until it holds
// the lock. The process is killed when the test ends, if still running.
func startHolder(t *testing.T, dir, op string) *holder {
	t.Helper()
	h := &holder{cmd: exec.CommandContext(t.Context(), "llorch-lock-holder", dir, op)}
	// Under -race a process sleeps a second before exiting, to let late
	// reports through; the holder has nothing to wait for.
	h.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	h.cmd.Stderr = &h.stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdout = bufio.NewReader(out)
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !h.done {
			_ = h.cmd.Process.Kill()
			_ = h.cmd.Wait()
		}
	})
	line, err := h.stdout.ReadString('\n')
	id, ok := strings.CutPrefix(strings.TrimSpace(line), "locked ")
	if err != nil || !ok {
		t.Fatalf("lock holder said %q (%v); stderr: %s", line, err, h.stderr.String())
	}
	h.id = id
	return h
}

func (h *holder) pid() int { return h.cmd.Process.Pid }

// kill ends the holder with SIGKILL, as a CI job killed mid-apply: it gets
// no chance to unlock.
func (h *holder) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = h.cmd.Wait() // "signal: killed"
	h.done = true
}

// release lets the holder unlock and exit normally.
func (h *holder) release(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	line, _ := h.stdout.ReadString('\n')
	if err := h.cmd.Wait(); err != nil || strings.TrimSpace(line) != "unlocked" {
		t.Fatalf("lock holder: %v, said %q; stderr: %s", err, line, h.stderr.String())
	}
	h.done = true
}

func TestLockHeldByAnotherProcessNamesIt(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, dir, "apply")
	s := local.New(afero.NewOsFs(), dir, local.Options{})

	_, err := s.Lock(t.Context(), state.LockInfo{Operation: "plan"})
	var le *state.LockError
	if !errors.As(err, &le) {
		t.Fatalf("Lock: error = %v, want a *state.LockError", err)
	}
	if le.Info.PID != h.pid() || le.Info.Operation != "apply" || le.Info.ID != h.id {
		t.Errorf("holder info = %+v, want pid %d, operation apply, id %s", le.Info, h.pid(), h.id)
	}
	host, _ := os.Hostname()
	wantPrefix := fmt.Sprintf("state is locked by %s (pid %d) for \"apply\" since ", le.Info.Who, h.pid())
	if !strings.HasPrefix(err.Error(), wantPrefix) || !strings.HasSuffix(err.Error(), " ago); lock ID "+h.id) {
		t.Errorf("error = %q\nwant %q… ago); lock ID %s", err, wantPrefix, h.id)
	}
	if !strings.HasSuffix(le.Info.Who, "@"+host) || le.Info.Host != host {
		t.Errorf("holder who/host = %q/%q, want user@%s", le.Info.Who, le.Info.Host, host)
	}

	err = s.ForceUnlock(t.Context(), h.id)
	want := fmt.Sprintf("cannot force-unlock: the lock is held by a running process (pid %d on host %s, \"apply\" since ", h.pid(), host)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; stop that process, or wait for it") {
		t.Errorf("ForceUnlock: error = %v\nwant %q…; stop that process, or wait for it", err, want)
	}
	h.release(t)

	id, err := s.Lock(t.Context(), state.LockInfo{Operation: "plan"})
	if err != nil {
		t.Fatalf("Lock after the holder released it: %v", err)
	}
	if err := s.Unlock(t.Context(), id); err != nil {
		t.Fatal(err)
	}
}

// A process killed while holding the lock loses it with its life; only its
// info stays behind, and force-unlock clears that.
func TestKilledHolderLeavesTheLockFree(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, dir, "destroy")
	h.kill(t)

	data, err := os.ReadFile(filepath.Join(dir, "state.lock"))
	if err != nil || !strings.Contains(string(data), h.id) {
		t.Fatalf("lock file after the kill = %q, %v; want the dead holder's info", data, err)
	}

	s := local.New(afero.NewOsFs(), dir, local.Options{})
	err = s.ForceUnlock(t.Context(), "not-the-id")
	want := fmt.Sprintf("cannot force-unlock: lock ID not-the-id does not match the recorded lock, which has ID %s (taken by ", h.id)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), fmt.Sprintf(", pid %d, for \"destroy\")", h.pid())) {
		t.Errorf("ForceUnlock(wrong id): error = %v\nwant %q…", err, want)
	}
	if err := s.ForceUnlock(t.Context(), h.id); err != nil {
		t.Fatalf("ForceUnlock(%s): %v", h.id, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "state.lock")); len(data) != 0 {
		t.Errorf("lock file after force-unlock = %q, want empty", data)
	}
	id, err := s.Lock(t.Context(), state.LockInfo{Operation: "apply"})
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	_ = s.Unlock(t.Context(), id)
}

// Force-unlock is not needed for the lock itself: the next Lock succeeds
// over a dead holder's leftover info and replaces it.
func TestLockOverDeadHoldersInfo(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, dir, "apply")
	h.kill(t)
	s := local.New(afero.NewOsFs(), dir, local.Options{})
	id, err := s.Lock(t.Context(), state.LockInfo{Operation: "plan"})
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "state.lock"))
	if strings.Contains(string(data), h.id) || !strings.Contains(string(data), id) {
		t.Errorf("lock file = %s; want our info, not the dead holder's", data)
	}
	_ = s.Unlock(t.Context(), id)
}

func TestLockWithTimeoutWaitsForAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	h := startHolder(t, dir, "apply")
	s := local.New(afero.NewOsFs(), dir, local.Options{})
	if _, err := s.Lock(t.Context(), state.LockInfo{}); err == nil {
		t.Fatal("lock not held by the other process")
	}
	type result struct {
		id  string
		err error
	}
	got := make(chan result, 1)
	go func() {
		id, err := state.LockWithTimeout(t.Context(), s, state.LockInfo{Operation: "apply"}, time.Minute)
		got <- result{id, err}
	}()
	h.release(t)
	r := <-got
	if r.err != nil {
		t.Fatalf("LockWithTimeout: %v", r.err)
	}
	if err := s.Unlock(t.Context(), r.id); err != nil {
		t.Fatal(err)
	}
}

func TestOSFilesAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".llorch")
	now := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	s := local.New(afero.NewOsFs(), dir, local.Options{Version: "0.1.0", Now: func() time.Time { return now }})
	st := sample()
	for range 2 {
		if err := s.Write(t.Context(), st); err != nil {
			t.Fatal(err)
		}
	}
	id, err := s.Lock(t.Context(), state.LockInfo{Operation: "apply"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		dir:                                     0o700 | os.ModeDir,
		filepath.Join(dir, "state.json"):        0o600,
		filepath.Join(dir, "state.json.backup"): 0o600,
		filepath.Join(dir, "state.lock"):        0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode(), want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("state directory holds %d entries, want 3 (no temporary files left)", len(entries))
	}

	data, err := os.ReadFile(filepath.Join(dir, "state.lock"))
	if err != nil {
		t.Fatal(err)
	}
	var info state.LockInfo
	if err := json.Unmarshal(data, &info); err != nil {
		t.Fatalf("lock file is not lock info: %v\n%s", err, data)
	}
	host, _ := os.Hostname()
	want := state.LockInfo{ID: id, Operation: "apply", Who: info.Who, Host: host, PID: os.Getpid(), Version: "0.1.0", Created: now, Path: filepath.Join(dir, "state.lock")}
	if info != want || !strings.HasSuffix(info.Who, "@"+host) || strings.HasPrefix(info.Who, "@") {
		t.Errorf("lock info = %+v\nwant      %+v", info, want)
	}
	if err := s.Unlock(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "state.lock")); err != nil || len(data) != 0 {
		t.Errorf("lock file after Unlock = %q, %v; want it kept, and empty", data, err)
	}
}

// fsKind builds a state directory on one kind of filesystem; the lock
// behaves the same on both.
type fsKind struct {
	name string
	make func(t *testing.T) (afero.Fs, string)
}

var fsKinds = []fsKind{
	{"os", func(t *testing.T) (afero.Fs, string) { return afero.NewOsFs(), filepath.Join(t.TempDir(), ".llorch") }},
	{"memory", func(t *testing.T) (afero.Fs, string) { return afero.NewMemMapFs(), "/srv/.llorch" }},
}

func TestLockIsExclusiveWithinOneProcess(t *testing.T) {
	for _, k := range fsKinds {
		t.Run(k.name, func(t *testing.T) {
			fs, dir := k.make(t)
			t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
			s1 := local.New(fs, dir, local.Options{Now: func() time.Time { return t0 }})
			s2 := local.New(fs, dir, local.Options{Now: func() time.Time { return t0.Add(2 * time.Minute) }})
			id, err := s1.Lock(t.Context(), state.LockInfo{Operation: "apply", Who: "ci@runner-3"})
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("state is locked by ci@runner-3 (pid %d) for \"apply\" since 2025-06-01T10:00:00Z (2m ago); lock ID %s", os.Getpid(), id)
			for name, s := range map[string]*local.Store{"same store": s1, "another store": s2} {
				_, err := s.Lock(t.Context(), state.LockInfo{Operation: "plan"})
				var le *state.LockError
				if !errors.As(err, &le) {
					t.Errorf("%s: error = %v, want a *state.LockError", name, err)
					continue
				}
				if name == "another store" && err.Error() != want {
					t.Errorf("%s: error = %q\nwant    %q", name, err, want)
				}
			}
			if err := s1.Unlock(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			id2, err := s2.Lock(t.Context(), state.LockInfo{Operation: "plan"})
			if err != nil {
				t.Fatalf("Lock after Unlock: %v", err)
			}
			if err := s2.Unlock(t.Context(), id2); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMemoryLocksOfDifferentFilesystemsAreIndependent(t *testing.T) {
	a := local.New(afero.NewMemMapFs(), "/srv/.llorch", local.Options{})
	b := local.New(afero.NewMemMapFs(), "/srv/.llorch", local.Options{})
	ida, err := a.Lock(t.Context(), state.LockInfo{})
	if err != nil {
		t.Fatal(err)
	}
	idb, err := b.Lock(t.Context(), state.LockInfo{})
	if err != nil {
		t.Fatalf("same path on another MemMapFs: %v", err)
	}
	_ = a.Unlock(t.Context(), ida)
	_ = b.Unlock(t.Context(), idb)
}

func TestUnlockErrors(t *testing.T) {
	for _, k := range fsKinds {
		t.Run(k.name, func(t *testing.T) {
			fs, dir := k.make(t)
			s := local.New(fs, dir, local.Options{})
			lockPath := filepath.Join(dir, "state.lock")

			err := s.Unlock(t.Context(), "abc")
			want := "unlocking state: this process holds no lock on " + lockPath + " (asked to release lock ID abc); a lock left by another process is released with llorch force-unlock"
			if err == nil || err.Error() != want {
				t.Errorf("Unlock without a lock: error = %v\nwant %s", err, want)
			}

			id, err := s.Lock(t.Context(), state.LockInfo{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Unlock(t.Context(), "abc")
			want = "unlocking state: lock ID abc is not the lock this process holds (lock ID " + id + ")"
			if err == nil || err.Error() != want {
				t.Errorf("Unlock with the wrong id: error = %v\nwant %s", err, want)
			}
			if _, err := s.Lock(t.Context(), state.LockInfo{}); err == nil {
				t.Error("a wrong-id Unlock released the lock")
			}
			if err := s.Unlock(t.Context(), id); err != nil {
				t.Errorf("Unlock(%s): %v", id, err)
			}
		})
	}
}

func TestForceUnlock(t *testing.T) {
	stale := state.LockInfo{ID: "0c5ef0a5-4d4e-4c39-a1ad-c1a5e52e1f3c", Operation: "apply", Who: "ci@runner-3", Host: "runner-3", PID: 4242}
	staleJSON, _ := json.Marshal(stale)
	tests := []struct {
		name     string
		lockFile *string // nil = no lock file
		hold     bool    // a live Store holds the lock
		id       string
		want     string // error, with {lock} for the lock path and {pid}; "" = success
	}{
		{name: "stale info with its id is cleared", lockFile: ptr(string(staleJSON)), id: stale.ID},
		{
			name: "stale info with another id names the right one", lockFile: ptr(string(staleJSON)), id: "wrong",
			want: `cannot force-unlock: lock ID wrong does not match the recorded lock, which has ID 0c5ef0a5-4d4e-4c39-a1ad-c1a5e52e1f3c (taken by ci@runner-3, pid 4242, for "apply")`,
		},
		{name: "no lock file", id: "x", want: "cannot force-unlock: there is no lock file {lock}, so the state is not locked"},
		{name: "empty lock file", lockFile: ptr(""), id: "x", want: "cannot force-unlock: the state is not locked ({lock} holds no lock info)"},
		{
			name: "unreadable lock info", lockFile: ptr("{garbage"), id: "x",
			want: "cannot force-unlock: the lock info in {lock} cannot be read (invalid character 'g' looking for beginning of object key string); no process holds the lock, so the file may be deleted",
		},
		{
			name: "held by a live process", hold: true, id: "x",
			want: `cannot force-unlock: the lock is held by a running process (pid {pid} on host build-7, "apply" since 2025-06-01T10:00:00Z, lock ID {id}); stop that process, or wait for it`,
		},
	}
	for _, k := range fsKinds {
		for _, tc := range tests {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				fs, dir := k.make(t)
				lockPath := filepath.Join(dir, "state.lock")
				if err := fs.MkdirAll(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if tc.lockFile != nil {
					if err := afero.WriteFile(fs, lockPath, []byte(*tc.lockFile), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
				var heldID string
				if tc.hold {
					holder := local.New(fs, dir, local.Options{Now: func() time.Time { return t0 }})
					id, err := holder.Lock(t.Context(), state.LockInfo{Operation: "apply", Host: "build-7"})
					if err != nil {
						t.Fatal(err)
					}
					heldID = id
					defer holder.Unlock(context.Background(), id)
				}
				err := local.New(fs, dir, local.Options{}).ForceUnlock(t.Context(), tc.id)
				want := strings.NewReplacer("{lock}", lockPath, "{pid}", fmt.Sprint(os.Getpid()), "{id}", heldID).Replace(tc.want)
				switch {
				case want == "" && err != nil:
					t.Fatalf("ForceUnlock: %v", err)
				case want != "" && (err == nil || err.Error() != want):
					t.Fatalf("ForceUnlock: error = %v\nwant %s", err, want)
				case want == "":
					if data, _ := afero.ReadFile(fs, lockPath); len(data) != 0 {
						t.Errorf("lock file after force-unlock = %q, want empty", data)
					}
				}
			})
		}
	}
}

func TestLockWithCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := local.New(afero.NewMemMapFs(), "/s", local.Options{}).Lock(ctx, state.LockInfo{})
	if err == nil || err.Error() != "locking state: context canceled" {
		t.Errorf("error = %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestConcurrentLockersOneWins(t *testing.T) {
	for _, k := range fsKinds {
		t.Run(k.name, func(t *testing.T) {
			fs, dir := k.make(t)
			const n = 8
			type win struct {
				s  *local.Store
				id string
			}
			wins := make(chan win, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					s := local.New(fs, dir, local.Options{})
					id, err := s.Lock(t.Context(), state.LockInfo{Operation: "apply"})
					var le *state.LockError
					switch {
					case err == nil:
						wins <- win{s, id}
					case !errors.As(err, &le):
						t.Errorf("Lock: %v", err)
					}
				})
			}
			wg.Wait()
			close(wins)
			if got := len(wins); got != 1 {
				t.Errorf("%d of %d concurrent lockers got the lock, want exactly 1", got, n)
			}
			for w := range wins {
				if err := w.s.Unlock(t.Context(), w.id); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
