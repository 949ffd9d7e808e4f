package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/llorch/llorch/state"
)

// heldLock is the lock a Store holds.
type heldLock struct {
	info    state.LockInfo
	lease   *spareLease
	rev     int64         // create revision of the lock key: the fence
	release chan struct{} // closed when the holder lets go, so losing the lease then is no loss
}

// spareLease is a lease with its keepalive.
type spareLease struct {
	session *concurrency.Session
	cancel  context.CancelFunc
}

func (l *spareLease) id() clientv3.LeaseID { return l.session.Lease() }

// ttlSeconds is LockTTL in etcd's unit, rounded up.
func (s *Store) ttlSeconds() int64 {
	return max(1, int64(math.Ceil(s.opts.LockTTL.Seconds())))
}

// grantLease grants a lease of LockTTL and keeps it alive until released.
func (s *Store) grantLease(ctx context.Context) (*spareLease, error) {
	var resp *clientv3.LeaseGrantResponse
	err := s.call(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		resp, err = cli.Grant(ctx, s.ttlSeconds())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating the lease of the state lock: %w", err)
	}
	cli, err := s.client()
	if err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(s.ctx)
	sess, err := concurrency.NewSession(cli, concurrency.WithLease(resp.ID), concurrency.WithContext(kctx))
	if err != nil {
		cancel()
		return nil, s.explain(err)
	}
	return &spareLease{session: sess, cancel: cancel}, nil
}

// prepareLease grants the lease of the next Lock ahead of it (Prefetch).
func (s *Store) prepareLease(ctx context.Context) {
	s.lockMu.Lock()
	have := s.spare != nil || s.held != nil
	s.lockMu.Unlock()
	if have {
		return
	}
	l, err := s.grantLease(ctx)
	if err != nil {
		return
	}
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.spare != nil || s.held != nil {
		go func() { _ = s.releaseLease(l, nil) }()
		return
	}
	s.spare = l
}

// releaseLease stops keeping l alive and revokes it, which deletes the
// keys attached to it.
func (s *Store) releaseLease(l *spareLease, release chan struct{}) error {
	if release != nil {
		close(release)
	}
	l.session.Orphan()
	l.cancel()
	err := s.call(context.Background(), func(ctx context.Context, cli *clientv3.Client) error {
		_, err := cli.Revoke(ctx, l.id())
		return err
	})
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil // expired or revoked already: the key is gone either way
	}
	return err
}

// lockPath is where the lock lives, for LockInfo.Path.
func (s *Store) lockPath() string { return s.where + ", key " + s.lockKey }

// Lock takes the state lock: it creates the lock key, carrying info, on a
// lease this Store keeps alive, in a transaction that also reads the state
// header (so that a prefetched state can be used without reading it
// again). When the key exists it returns a *state.LockError at once, with
// the holder's info from the key.
func (s *Store) Lock(ctx context.Context, info state.LockInfo) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("locking state: %w", err)
	}
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.held != nil {
		return "", &state.LockError{Info: s.held.info, Now: s.opts.Now()}
	}
	info = info.WithDefaults(s.opts.Version, s.opts.Now(), s.lockPath())
	data, err := json.Marshal(info)
	if err != nil {
		return "", fmt.Errorf("encoding lock info: %w", err)
	}
	lease := s.spare
	if lease != nil {
		select {
		case <-lease.session.Done(): // expired while unused
			lease.cancel()
			lease = nil
		default:
		}
	}
	if lease == nil {
		if lease, err = s.grantLease(ctx); err != nil {
			return "", fmt.Errorf("locking state: %w", err)
		}
	}
	s.spare = nil
	var resp *clientv3.TxnResponse
	err = s.call(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		resp, err = cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(s.lockKey), "=", 0)).
			Then(clientv3.OpPut(s.lockKey, string(data), clientv3.WithLease(lease.id())), clientv3.OpGet(s.headerKey)).
			Else(clientv3.OpGet(s.lockKey)).
			Commit()
		return err
	})
	if err != nil {
		s.spare = lease // for the next try; Close revokes it
		return "", fmt.Errorf("locking state: %w", err)
	}
	if !resp.Succeeded {
		s.spare = lease
		s.lastHeld = resp.Header.Revision
		le := &state.LockError{Now: s.opts.Now()}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		switch {
		case len(kvs) == 0:
			le.Err = errors.New("the lock was released while it was being read")
		default:
			if err := json.Unmarshal(kvs[0].Value, &le.Info); err != nil {
				le.Err = fmt.Errorf("decoding the lock info at %s: %w", s.lockKey, err)
			}
		}
		return "", le
	}
	h := &heldLock{info: info, lease: lease, rev: resp.Header.Revision, release: make(chan struct{})}
	s.held = h
	s.lockSawHeaderRev = 0
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		s.lockSawHeaderRev = kvs[0].ModRevision
	}
	go s.watchLease(h)
	return info.ID, nil
}

// watchLease marks the Store lost when h's lease ends before h is
// released: etcd did not hear from this process within lock_ttl, or the
// lock was force-unlocked. A fenced write would fail anyway; losing says
// so at once, so that apply starts nothing it could not record.
func (s *Store) watchLease(h *heldLock) {
	select {
	case <-h.release:
	case <-h.lease.session.Done():
		select {
		case <-h.release:
		default:
			s.markLost(&LockLostError{Where: s.where, ID: h.info.ID, TTL: s.opts.LockTTL})
		}
	}
}

// LockLostError is a write refused because the lock is no longer this
// Store's: its lease expired (the process was paused or cut off from etcd
// for longer than lock_ttl), or it was force-unlocked.
type LockLostError struct {
	Where string
	ID    string
	TTL   time.Duration
	Cause error // what else went wrong, if known
}

func (e *LockLostError) Error() string {
	msg := fmt.Sprintf("the state lock (lock ID %s) is no longer held by this llorch (%s): its lease ran out, because etcd did not hear from this process for lock_ttl (%s), or someone ran llorch force-unlock; another llorch may hold the lock and have written the state since, so it was not overwritten",
		e.ID, e.Where, e.TTL)
	if e.Cause != nil {
		msg += fmt.Sprintf(" (%v)", e.Cause)
	}
	return msg
}

func (e *LockLostError) Unwrap() error { return e.Cause }

// markLost records that this Store can no longer write, once.
func (s *Store) markLost(err error) {
	s.lostOnce.Do(func() {
		s.stateMu.Lock()
		s.lostErr = err
		s.stateMu.Unlock()
		close(s.lost)
	})
}

// Lost is closed when this Store can no longer write: its lock's lease
// ran out, or a write found etcd unreachable. Every later Write fails at
// once (and is dumped); apply stops starting new work.
func (s *Store) Lost() <-chan struct{} { return s.lost }

// lostError is why the Store is lost, or nil.
func (s *Store) lostError() error {
	select {
	case <-s.lost:
		s.stateMu.Lock()
		defer s.stateMu.Unlock()
		return s.lostErr
	default:
		return nil
	}
}

// Unlock releases the lock with id by revoking its lease, which deletes the
// lock key. ctx is not consulted: a command interrupted with Ctrl-C must
// still release its lock.
func (s *Store) Unlock(_ context.Context, id string) error {
	s.lockMu.Lock()
	h := s.held
	if h == nil {
		s.lockMu.Unlock()
		return fmt.Errorf("unlocking state: this process holds no lock on %s (asked to release lock ID %s); a lock left by another process is released with llorch force-unlock", s.lockPath(), id)
	}
	if h.info.ID != id {
		s.lockMu.Unlock()
		return fmt.Errorf("unlocking state: lock ID %s is not the lock this process holds (lock ID %s)", id, h.info.ID)
	}
	s.held = nil
	s.lockMu.Unlock()
	if err := s.releaseLease(h.lease, h.release); err != nil {
		return fmt.Errorf("releasing the state lock (lock ID %s): %w; it is released by itself within lock_ttl (%s)", id, err, s.opts.LockTTL)
	}
	return nil
}

// ForceUnlock deletes the lock with id and revokes its lease, whether or
// not its holder still runs: a holder that lost its lock this way can no
// longer write (its writes are fenced).
func (s *Store) ForceUnlock(ctx context.Context, id string) error {
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		resp, err = cli.Get(ctx, s.lockKey)
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot force-unlock: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("cannot force-unlock: the state is not locked (there is no key %s in %s)", s.lockKey, s.where)
	}
	kv := resp.Kvs[0]
	var info state.LockInfo
	if err := json.Unmarshal(kv.Value, &info); err != nil {
		info.ID = "" // an unreadable lock is removed only by its lease or by hand
		return fmt.Errorf("cannot force-unlock: the lock info at %s cannot be read (%v); it goes away when its lease runs out, within lock_ttl", s.lockKey, err)
	}
	if info.ID != id {
		return fmt.Errorf("cannot force-unlock: lock ID %s does not match the recorded lock, which has ID %s (taken by %s, pid %d, for %q)",
			id, info.ID, info.Who, info.PID, info.Operation)
	}
	var txn *clientv3.TxnResponse
	err = s.call(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		txn, err = cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(s.lockKey), "=", kv.CreateRevision)).
			Then(clientv3.OpDelete(s.lockKey)).
			Commit()
		if err != nil || kv.Lease == 0 {
			return err
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("force-unlocking state: %w", err)
	}
	if !txn.Succeeded {
		return errors.New("cannot force-unlock: the lock was released and taken again meanwhile; run llorch force-unlock again with the new lock ID if it is stuck too")
	}
	return nil
}

// WaitUnlocked returns when the lock that Lock last found held is deleted
// (released, or its lease ran out), or when ctx is done: an etcd watch
// from the revision it was found at, so a release in between is not missed.
func (s *Store) WaitUnlocked(ctx context.Context) {
	s.lockMu.Lock()
	rev := s.lastHeld
	s.lockMu.Unlock()
	cli, err := s.client()
	if err != nil || rev == 0 {
		return
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range cli.Watch(wctx, s.lockKey, clientv3.WithRev(rev+1), clientv3.WithFilterPut()) {
		if resp.Err() != nil || len(resp.Events) > 0 {
			return
		}
	}
}
