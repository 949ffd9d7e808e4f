package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Store persists State. Every state access in plan and apply goes through
// it, so another backend (etcd) can follow without touching them.
type Store interface {
	// Read returns a private deep copy of the latest snapshot. With no state
	// yet it returns an empty State with a new lineage. A corrupt or
	// unknown-version file is an error that names the backup; it is never
	// overwritten.
	Read(ctx context.Context) (*State, error)
	// Write persists s atomically, keeps the previous snapshot as a backup,
	// sets s.Serial to the previous serial + 1 and refuses another lineage.
	Write(ctx context.Context, s *State) error
	// Lock takes the state lock for info.Operation and returns its id. When
	// the lock is held it returns a *LockError at once, naming the holder.
	Lock(ctx context.Context, info LockInfo) (id string, err error)
	// Unlock releases the lock with id.
	Unlock(ctx context.Context, id string) error
	// ForceUnlock releases a lock whose holder is gone, if its id matches.
	ForceUnlock(ctx context.Context, id string) error
}

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
// passes (0 = one try, as Terraform's -lock-timeout=0s) or ctx is done.
// When it gives up, the error still unwraps to the last *LockError, so the
// caller can show who holds the lock.
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
		retry := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			retry.Stop()
			return "", fmt.Errorf("waiting for the state lock: %w: %w", ctx.Err(), err)
		case <-deadline.C:
			retry.Stop()
			// One last try: the holder may have let go just now.
			if id, err = s.Lock(ctx, info); err == nil || !errors.As(err, &le) {
				return id, err
			}
			return "", fmt.Errorf("gave up waiting for the state lock after %s: %w", timeout, err)
		case <-retry.C:
		}
		if id, err = s.Lock(ctx, info); err == nil || !errors.As(err, &le) {
			return id, err
		}
		delay = min(delay*2, lockRetryMax)
	}
}
