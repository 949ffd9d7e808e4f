package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Store persists State. Every state access in plan and apply goes through
// it: state/local keeps it in a file, state/etcd in etcd. The rules of what
// may replace what (lineage, serial) are NextSerial and PushSerial, which
// every backend applies; state/statetest holds backends to them.
//
// A finer-grained kind of write, appending one step's result to a journal
// folded into the state, is the optional Journal beside it (state/local
// has it): Write stays the whole-state write every backend has.
type Store interface {
	// Read returns a private deep copy of the latest snapshot. With no state
	// yet it returns an empty State with a new lineage. A corrupt or
	// unknown-version state is an error that names the backup; it is never
	// overwritten.
	Read(ctx context.Context) (*State, error)
	// ReadBackup returns the snapshot the last write replaced, or
	// ErrNoBackup.
	ReadBackup(ctx context.Context) (*State, error)
	// Write persists s atomically, keeps the previous snapshot as a backup,
	// and sets s.Serial to the serial written; NextSerial says which, and
	// what is refused. A failed write leaves the stored state as it was and
	// saves s elsewhere (errored.state.json), returning a *WriteError.
	Write(ctx context.Context, s *State) error
	// Push replaces the stored state with s, keeping s's lineage, as
	// state push and init -migrate-state do: PushSerial says when, and
	// force skips its checks (and overwrites a corrupt state). s.Serial is
	// set to the serial stored.
	Push(ctx context.Context, s *State, force bool) error
	// Lock takes the state lock for info.Operation and returns its id. When
	// the lock is held it returns a *LockError at once, naming the holder.
	Lock(ctx context.Context, info LockInfo) (id string, err error)
	// Unlock releases the lock with id.
	Unlock(ctx context.Context, id string) error
	// ForceUnlock releases a lock whose holder is gone, if its id matches.
	ForceUnlock(ctx context.Context, id string) error
}

// ErrNoBackup is ReadBackup's error when no write has replaced a state yet.
var ErrNoBackup = errors.New("there is no backup of the state: no write has replaced one yet")

// Waiter is a Store that can tell when a held lock may have been released
// (an etcd watch), so LockWithTimeout tries again then instead of polling.
type Waiter interface {
	// WaitUnlocked returns when the lock that the last Lock found held
	// may be free, or when ctx is done.
	WaitUnlocked(ctx context.Context)
}

// WriteError is a failed Write. The state that could not be written is in
// ErroredPath, unless DumpErr says why it could not be saved there either.
type WriteError struct {
	Path        string // the stored state: a file, or an etcd prefix
	ErroredPath string // where the state went instead; "" if it could not be saved
	DumpErr     error  // why it could not be saved to the errored path
	Err         error  // why the write failed
	// Restore says how to store the saved state once the problem is fixed
	// ("copy it to .llorch/state.json"); empty means that.
	Restore string
}

func (e *WriteError) Error() string {
	msg := fmt.Sprintf("writing state to %s: %v; ", e.Path, e.Err)
	var le *LineageError
	var se *StaleError
	switch {
	case e.ErroredPath == "":
		msg += fmt.Sprintf("%v failed too, so this run's changes to the state are lost", e.DumpErr)
	case errors.As(e.Err, &le), errors.As(e.Err, &se):
		msg += fmt.Sprintf("the state was written to %s instead: compare it with %s before replacing either", e.ErroredPath, e.Path)
	case e.Restore != "":
		msg += fmt.Sprintf("the state was written to %s instead: %s once the problem is fixed", e.ErroredPath, e.Restore)
	default:
		msg += fmt.Sprintf("the state was written to %s instead: copy it to %s once the problem is fixed", e.ErroredPath, e.Path)
	}
	return msg
}

func (e *WriteError) Unwrap() error { return e.Err }

// LockInfo says who holds (or asks for) the lock.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"` // "apply", "destroy", "state rm", …
	Who       string    `json:"who"`       // user@host
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	Created   time.Time `json:"created"`
	Path      string    `json:"path"`
}

// WithDefaults fills in the fields of in left empty: a new ID, this
// user@host, the host, this process's pid, version, now, and path (which
// is always set: where the lock lives).
func (in LockInfo) WithDefaults(version string, now time.Time, path string) LockInfo {
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	if in.Host == "" {
		in.Host, _ = os.Hostname()
	}
	if in.Who == "" {
		in.Who = userName() + "@" + in.Host
	}
	if in.PID == 0 {
		in.PID = os.Getpid()
	}
	if in.Version == "" {
		in.Version = version
	}
	if in.Created.IsZero() {
		in.Created = now.UTC()
	}
	in.Path = path
	return in
}

// userName is the current user's login name, or the best stand-in: a
// container without a passwd entry still has $USER or a uid.
func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return n
	}
	return fmt.Sprintf("uid%d", os.Getuid())
}

// LockError is returned when the lock is held by someone else.
type LockError struct {
	Info LockInfo // the holder, as far as it could be read
	// Now is when the lock was found held; the holder's age is measured
	// from it. Zero leaves the age out of the message.
	Now time.Time
	// Err is why the holder's info could not be read, if it could not.
	Err error
}

func (e *LockError) Error() string {
	var b strings.Builder
	b.WriteString("state is locked by ")
	switch {
	case e.Info.Who != "" && e.Info.PID != 0:
		fmt.Fprintf(&b, "%s (pid %d)", e.Info.Who, e.Info.PID)
	case e.Info.Who != "":
		b.WriteString(e.Info.Who)
	case e.Info.PID != 0:
		fmt.Fprintf(&b, "pid %d", e.Info.PID)
	default:
		b.WriteString("another process")
	}
	if e.Info.Operation != "" {
		fmt.Fprintf(&b, " for %q", e.Info.Operation)
	}
	if !e.Info.Created.IsZero() {
		fmt.Fprintf(&b, " since %s", e.Info.Created.Format(time.RFC3339))
		if age := e.Now.Sub(e.Info.Created); !e.Now.IsZero() && age >= 0 {
			fmt.Fprintf(&b, " (%s ago)", shortDuration(age))
		}
	}
	if e.Info.ID != "" {
		fmt.Fprintf(&b, "; lock ID %s", e.Info.ID)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, "; the holder's lock info could not be read: %v", e.Err)
	}
	return b.String()
}

func (e *LockError) Unwrap() error { return e.Err }

// shortDuration prints d to the second without trailing zero units:
// "2m", "1h5m", "42s".
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Lock retry delays of LockWithTimeout: short at first, so a lock released
// soon is taken soon, then capped so a long wait does not spin.
const (
	lockRetryFirst = 50 * time.Millisecond
	lockRetryMax   = 2 * time.Second
)

// LockWithTimeout takes the lock, retrying while it is held until timeout
// passes (0 = one try, as Terraform's -lock-timeout=0s) or ctx is done. A
// Waiter is tried again when it says the lock may be free, any other Store
// at growing intervals. When it gives up, the error still unwraps to the
// last *LockError, so the caller can show who holds the lock.
func LockWithTimeout(ctx context.Context, s Store, info LockInfo, timeout time.Duration) (string, error) {
	id, err := s.Lock(ctx, info)
	var le *LockError
	if err == nil || !errors.As(err, &le) || timeout <= 0 {
		return id, err
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	delay := lockRetryFirst
	for {
		retry, stop := retrySignal(ctx, s, delay)
		select {
		case <-ctx.Done():
			stop()
			return "", fmt.Errorf("waiting for the state lock: %w: %w", ctx.Err(), err)
		case <-deadline.C:
			stop()
			// One last try: the holder may have let go just now.
			if id, err = s.Lock(ctx, info); err == nil || !errors.As(err, &le) {
				return id, err
			}
			return "", fmt.Errorf("gave up waiting for the state lock after %s: %w", timeout, err)
		case <-retry:
			stop()
		}
		if id, err = s.Lock(ctx, info); err == nil || !errors.As(err, &le) {
			return id, err
		}
		delay = min(delay*2, lockRetryMax)
	}
}

// retrySignal returns a channel that is closed when it is time to try the
// lock again, and the function that releases what waits for that.
func retrySignal(ctx context.Context, s Store, delay time.Duration) (<-chan struct{}, func()) {
	w, ok := s.(Waiter)
	if !ok {
		ch := make(chan struct{})
		t := time.AfterFunc(delay, func() { close(ch) })
		return ch, func() { t.Stop() }
	}
	wctx, cancel := context.WithCancel(ctx)
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		w.WaitUnlocked(wctx)
	}()
	return ch, func() { cancel(); <-ch }
}
