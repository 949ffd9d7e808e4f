package state

import (
	"context"
	"errors"
	"fmt"
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
	Err  error
}

func (e *LockError) Error() string {
	age := ""
	if !e.Info.Created.IsZero() {
		age = fmt.Sprintf(", %s ago", time.Since(e.Info.Created).Round(time.Second))
	}
	return fmt.Sprintf("state is locked by %s (pid %d) for %q since %s%s; lock ID %s",
		e.Info.Who, e.Info.PID, e.Info.Operation, e.Info.Created.Format(time.RFC3339), age, e.Info.ID)
}

func (e *LockError) Unwrap() error { return e.Err }

// LockWithTimeout takes the lock, retrying while it is held until timeout
// passes (0 = one try, as Terraform's -lock-timeout=0s).
func LockWithTimeout(ctx context.Context, s Store, info LockInfo, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Millisecond
	for {
		id, err := s.Lock(ctx, info)
		var le *LockError
		if err == nil || !errors.As(err, &le) || !time.Now().Before(deadline) {
			return id, err
		}
		wait := min(delay, time.Until(deadline))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("waiting for state lock: %w (%w)", ctx.Err(), err)
		case <-t.C:
		}
		delay = min(delay*2, 2*time.Second)
	}
}
