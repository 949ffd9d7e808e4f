package state

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

func TestLockErrorMessage(t *testing.T) {
	since := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	holder := LockInfo{ID: "0c5ef0a5-4d4e-4c39-a1ad-c1a5e52e1f3c", Operation: "apply", Who: "root@build-7", Host: "build-7", PID: 4242, Created: since}
	tests := []struct {
		name string
		err  *LockError
		want string
	}{
		{
			"full holder info with age",
			&LockError{Info: holder, Now: since.Add(2*time.Minute + 10*time.Millisecond)},
			`state is locked by root@build-7 (pid 4242) for "apply" since 2025-06-01T10:00:00Z (2m ago); lock ID 0c5ef0a5-4d4e-4c39-a1ad-c1a5e52e1f3c`,
		},
		{
			"no observation time leaves the age out",
			&LockError{Info: holder},
			`state is locked by root@build-7 (pid 4242) for "apply" since 2025-06-01T10:00:00Z; lock ID 0c5ef0a5-4d4e-4c39-a1ad-c1a5e52e1f3c`,
		},
		{
			"holder clock ahead of ours leaves the age out",
			&LockError{Info: holder, Now: since.Add(-time.Minute)},
			`state is locked by root@build-7 (pid 4242) for "apply" since 2025-06-01T10:00:00Z; lock ID 0c5ef0a5-4d4e-4c39-a1ad-c1a5e52e1f3c`,
		},
		{
			"unreadable holder info",
			&LockError{Now: since, Err: errors.New("unexpected end of JSON input")},
			"state is locked by another process; the holder's lock info could not be read: unexpected end of JSON input",
		},
		{
			"only a pid",
			&LockError{Info: LockInfo{PID: 7}},
			"state is locked by pid 7",
		},
		{
			"only a user",
			&LockError{Info: LockInfo{Who: "ci@runner", Operation: "destroy"}},
			`state is locked by ci@runner for "destroy"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q\nwant      %q", got, tc.want)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{42 * time.Second, "42s"},
		{90 * time.Second, "1m30s"},
		{2 * time.Minute, "2m"},
		{10 * time.Minute, "10m"},
		{time.Hour, "1h"},
		{time.Hour + 5*time.Minute, "1h5m"},
		{time.Hour + 5*time.Second, "1h0m5s"},
		{50 * time.Hour, "50h"},
	}
	for _, tc := range tests {
		if got := shortDuration(tc.d); got != tc.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// lockedStore reports the lock held for its first `held` Lock calls.
type lockedStore struct {
	Store
	held  int
	calls int
	err   error // returned instead of a LockError when set
}

func (s *lockedStore) Lock(ctx context.Context, info LockInfo) (string, error) {
	s.calls++
	if s.err != nil {
		return "", s.err
	}
	if s.calls <= s.held {
		return "", &LockError{Info: LockInfo{Who: "ci@runner", PID: 9, Operation: "apply", ID: "held-id"}}
	}
	return "our-id", nil
}

func TestLockWithTimeout(t *testing.T) {
	notLockErr := errors.New("opening lock file: permission denied")
	tests := []struct {
		name      string
		store     *lockedStore
		timeout   time.Duration
		cancelled bool
		wantID    string
		wantErr   string // prefix
		wantLock  bool   // the error unwraps to a *LockError
		wantCalls int    // exact, or minimum when wantCallsAtLeast
		atLeast   bool
	}{
		{name: "free lock is taken at once", store: &lockedStore{}, timeout: time.Minute, wantID: "our-id", wantCalls: 1},
		{name: "zero timeout tries once", store: &lockedStore{held: 5}, wantErr: `state is locked by ci@runner (pid 9) for "apply"`, wantLock: true, wantCalls: 1},
		{name: "other errors are not retried", store: &lockedStore{err: notLockErr}, timeout: time.Minute, wantErr: notLockErr.Error(), wantCalls: 1},
		{name: "lock released while waiting is taken", store: &lockedStore{held: 2}, timeout: time.Minute, wantID: "our-id", wantCalls: 3},
		{
			name: "timeout passes while held", store: &lockedStore{held: 1 << 30}, timeout: 120 * time.Millisecond,
			wantErr: `gave up waiting for the state lock after 120ms: state is locked by ci@runner (pid 9) for "apply"`, wantLock: true,
			wantCalls: 3, atLeast: true, // first try, at least one retry, one last try
		},
		{
			name: "cancelled context stops the wait", store: &lockedStore{held: 1 << 30}, timeout: time.Minute, cancelled: true,
			wantErr: "waiting for the state lock: context canceled: state is locked by ci@runner", wantLock: true, wantCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			id, err := LockWithTimeout(ctx, tc.store, LockInfo{Operation: "plan"}, tc.timeout)
			if id != tc.wantID {
				t.Errorf("id = %q, want %q", id, tc.wantID)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Errorf("error = %v\nwant prefix %q", err, tc.wantErr)
			}
			var le *LockError
			if got := errors.As(err, &le); got != tc.wantLock {
				t.Errorf("errors.As(*LockError) = %v, want %v", got, tc.wantLock)
			}
			if tc.cancelled && !errors.Is(err, context.Canceled) {
				t.Errorf("error does not wrap context.Canceled: %v", err)
			}
			if tc.atLeast && tc.store.calls < tc.wantCalls || !tc.atLeast && tc.store.calls != tc.wantCalls {
				t.Errorf("Lock called %d times, want %d (at least: %v)", tc.store.calls, tc.wantCalls, tc.atLeast)
			}
		})
	}
}

// A LockError's Err stays reachable, so callers can tell an unreadable
// holder from a readable one.
func TestLockErrorUnwraps(t *testing.T) {
	err := error(&LockError{Err: fs.ErrPermission})
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("errors.Is does not reach LockError.Err")
	}
}

// waitingStore is a lockedStore that is a Waiter: it says the lock may be
// free as soon as released is closed.
type waitingStore struct {
	lockedStore
	released chan struct{}
	waits    int
}

func (s *waitingStore) WaitUnlocked(ctx context.Context) {
	s.waits++
	select {
	case <-s.released:
	case <-ctx.Done():
	}
}

// A Waiter is tried again when it says so, not after a poll interval.
func TestLockWithTimeoutWaitsOnAWaiter(t *testing.T) {
	s := &waitingStore{lockedStore: lockedStore{held: 1}, released: make(chan struct{})}
	close(s.released)
	start := time.Now()
	id, err := LockWithTimeout(t.Context(), s, LockInfo{Operation: "plan"}, time.Hour)
	if err != nil || id != "our-id" {
		t.Fatalf("LockWithTimeout = %q, %v", id, err)
	}
	if s.waits != 1 || s.calls != 2 {
		t.Errorf("waits = %d, Lock calls = %d; want 1 wait and 2 tries", s.waits, s.calls)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("the retry waited for a timer")
	}
}
