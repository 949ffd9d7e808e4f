package etcd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/state"
)

// Write stores st under state.NextSerial's rules, fenced (see the package
// doc): on success st.Serial, st.FormatVersion and st.LlorchVersion are
// what was written. A refused or failed write leaves etcd as it was, dumps
// st to the errored path and returns a *state.WriteError; one that found
// etcd unreachable also makes the Store lost.
//
// ctx is not consulted beyond the request timeouts: a command interrupted
// with Ctrl-C must still be able to save what it did.
func (s *Store) Write(ctx context.Context, st *state.State) error {
	return s.store(context.WithoutCancel(ctx), st, func(known *observed) (uint64, bool, error) {
		serial, err := state.NextSerial(s.where, known.hdr.head(), st)
		return serial, true, err
	}, true)
}

// Push replaces the stored state with st (state push, init
// -migrate-state) under state.PushSerial's rules, fenced as Write; force
// also overwrites a corrupt or newer-format state. A refused push dumps
// nothing: the state being pushed came from somewhere.
func (s *Store) Push(ctx context.Context, st *state.State, force bool) error {
	return s.store(context.WithoutCancel(ctx), st, func(known *observed) (uint64, bool, error) {
		var stored *state.State
		if known.hdr != nil {
			prev, err := s.readBody(ctx, known.hdr.Current, known.at, s.backupName(known.hdr))
			switch {
			case err != nil && !force:
				return 0, false, err
			case err != nil:
				// Forced over what cannot be read: its header still
				// says which serial it had, and the serial never goes back.
				stored = &state.State{Lineage: known.hdr.Lineage, Serial: known.hdr.Current.Serial}
			default:
				stored = prev
			}
		}
		return state.PushSerial(s.where, stored, st, force)
	}, false)
}

// decideFunc says, from the stored header, under which serial the new
// state is stored, or that nothing needs writing, or why it must not be.
type decideFunc func(known *observed) (serial uint64, write bool, err error)

// store does Write (ordinary) and Push: a refusal of an ordinary write
// dumps the state, a refused push does not.
func (s *Store) store(ctx context.Context, st *state.State, decide decideFunc, ordinary bool) error {
	if st == nil {
		return errors.New("writing state: the state is nil")
	}
	s.stateMu.Lock()
	known := s.known
	s.stateMu.Unlock()

	cp := *st
	cp.FormatVersion = state.FormatVersion
	if s.opts.Version != "" {
		cp.LlorchVersion = s.opts.Version
	}
	cp.Serial = st.Serial + 1 // until the stored serial is known
	if err := s.lostError(); err != nil {
		return s.dump(&cp, err)
	}
	if known == nil && !ordinary {
		hdr, rev, at, err := s.getHeaderAt(ctx, 0)
		if err != nil && !errors.As(err, new(*state.CorruptError)) {
			return fmt.Errorf("writing state to %s: %w", s.where, err)
		}
		known = &observed{rev: rev, at: at, hdr: hdr}
	}
	if known == nil {
		// Nothing read through this Store yet: read the stored state
		// whole, so that a corrupt or newer-format one is refused here
		// as after a Read.
		if _, _, err := s.readCurrent(ctx); err != nil {
			var ce *state.CorruptError
			var ve *state.VersionError
			if errors.As(err, &ce) || errors.As(err, &ve) {
				return s.dump(&cp, err)
			}
			return s.failed(&cp, err)
		}
		s.stateMu.Lock()
		known = s.known
		s.stateMu.Unlock()
	}
	serial, write, err := decide(known)
	if err != nil {
		if !ordinary {
			return fmt.Errorf("writing state to %s: %w", s.where, err)
		}
		return s.dump(&cp, err)
	}
	cp.Serial = serial
	if !write {
		st.Serial = serial
		return nil
	}
	data, err := state.Encode(&cp)
	if err != nil {
		return fmt.Errorf("writing state to %s: %w", s.where, err)
	}
	rev, hdr, err := s.put(ctx, &cp, data, known)
	if err != nil {
		return s.failed(&cp, err)
	}
	s.stateMu.Lock()
	s.known = &observed{rev: rev, at: rev, hdr: hdr}
	s.stateMu.Unlock()
	st.Serial, st.FormatVersion, st.LlorchVersion = cp.Serial, cp.FormatVersion, cp.LlorchVersion
	return nil
}

// failed dumps cp after err stopped a write; an unreachable etcd makes
// the Store lost.
func (s *Store) failed(cp *state.State, err error) error {
	var ue *UnreachableError
	if errors.As(err, &ue) {
		s.markLost(err)
	}
	return s.dump(cp, err)
}

// put stores cp (encoded as data) over what known says is stored, in
// fenced transactions, and returns the new header and its revision.
func (s *Store) put(ctx context.Context, cp *state.State, data []byte, known *observed) (int64, *header, error) {
	stored, err := compress(data)
	if err != nil {
		return 0, nil, fmt.Errorf("compressing the state: %w", err)
	}
	sum := sha256.Sum256(stored)
	hdr := &header{
		Version: headerVersion,
		Lineage: cp.Lineage,
		Current: body{
			Lineage: cp.Lineage, Serial: cp.Serial, Key: bodyKey(cp.Serial, uuid.NewString()[:8]),
			Encoding: "gzip", Size: len(stored), Length: len(data),
			SHA256: hex.EncodeToString(sum[:]),
		},
	}
	var parts [][]byte
	for len(stored) > 0 {
		n := min(len(stored), s.opts.PartSize)
		parts = append(parts, stored[:n])
		stored = stored[n:]
	}
	hdr.Current.Parts = len(parts)
	if known.hdr != nil {
		prev := known.hdr.Current
		hdr.Backup = &prev
	}
	hdrJSON, err := json.Marshal(hdr)
	if err != nil {
		return 0, nil, err
	}

	fence, held := s.fence(known.rev)
	// Stage what does not fit in the last transaction beside the header.
	i, budget := 0, s.opts.TxnBytes-len(hdrJSON)-len(s.headerKey)
	var batches [][]clientv3.Op
	var batch []clientv3.Op
	size := 0
	for ; i < len(parts); i++ {
		if size+len(parts[i]) > budget && len(batch) > 0 {
			batches = append(batches, batch)
			batch, size = nil, 0
		}
		batch = append(batch, clientv3.OpPut(s.partKey(hdr.Current, i), string(parts[i])))
		size += len(parts[i]) + 64
	}
	last := batch
	for _, b := range batches {
		if err := s.fencedTxn(ctx, fence, held, known, b); err != nil {
			return 0, nil, err
		}
	}
	last = append(last, clientv3.OpPut(s.headerKey, string(hdrJSON)))
	if hdr.Backup != nil && hdr.Backup.Serial < cp.Serial {
		// Everything older than the state being replaced, which stays as
		// the backup, and what earlier failed writes left.
		last = append(last, clientv3.OpDelete(s.partsPrefix, clientv3.WithRange(s.serialPrefix(hdr.Backup.Serial))))
	}
	resp, err := s.fencedCommit(ctx, fence, held, known, last)
	if err != nil {
		return 0, nil, err
	}
	return resp.Header.Revision, hdr, nil
}

// fence is what every write transaction compares: the lock key is the one
// this Store created (when it holds the lock), and the header is still at
// the revision it was read at.
func (s *Store) fence(headerRev int64) ([]clientv3.Cmp, *heldLock) {
	s.lockMu.Lock()
	held := s.held
	s.lockMu.Unlock()
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.headerKey), "=", headerRev)}
	if held != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.lockKey), "=", held.rev))
	}
	return cmps, held
}

func (s *Store) fencedTxn(ctx context.Context, fence []clientv3.Cmp, held *heldLock, known *observed, ops []clientv3.Op) error {
	_, err := s.fencedCommit(ctx, fence, held, known, ops)
	return err
}

// fencedCommit runs ops if the fence holds, and says why not otherwise.
func (s *Store) fencedCommit(ctx context.Context, fence []clientv3.Cmp, held *heldLock, known *observed, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	var resp *clientv3.TxnResponse
	err := s.call(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		resp, err = cli.Txn(ctx).If(fence...).Then(ops...).
			Else(clientv3.OpGet(s.lockKey), clientv3.OpGet(s.headerKey)).Commit()
		return err
	})
	if err != nil {
		return nil, err
	}
	if resp.Succeeded {
		return resp, nil
	}
	lockKvs := resp.Responses[0].GetResponseRange().Kvs
	if held != nil && (len(lockKvs) == 0 || lockKvs[0].CreateRevision != held.rev) {
		lerr := &LockLostError{Where: s.where, ID: held.info.ID, TTL: s.opts.LockTTL}
		s.markLost(lerr)
		return nil, lerr
	}
	// The header moved: someone else wrote. Say so in the rules' terms.
	var now *observed
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		hdr, err := s.decodeHeader(kvs[0])
		if err != nil {
			return nil, err
		}
		now = &observed{rev: kvs[0].ModRevision, at: resp.Header.Revision, hdr: hdr}
	} else {
		now = &observed{at: resp.Header.Revision}
	}
	s.observe(now)
	readAt := uint64(0)
	if known.hdr != nil {
		readAt = known.hdr.Current.Serial
	}
	if now.hdr == nil {
		return nil, fmt.Errorf("the state at %s was deleted since it was read at serial %d", s.where, readAt)
	}
	if known.hdr != nil && now.hdr.Lineage != known.hdr.Lineage {
		return nil, &state.LineageError{Path: s.where, Stored: now.hdr.Lineage, Writing: known.hdr.Lineage}
	}
	return nil, &state.StaleError{Path: s.where, Read: readAt, Stored: now.hdr.Current.Serial}
}

// dump saves cp to the errored path after cause stopped a write.
func (s *Store) dump(cp *state.State, cause error) error {
	werr := &state.WriteError{Path: s.where, Err: cause,
		Restore: "store it with llorch state push " + s.opts.ErroredPath}
	data, err := state.Encode(cp)
	if err == nil {
		err = atomicfile.Write(s.opts.Fs, s.opts.ErroredPath, data, 0o600)
	}
	if err != nil {
		werr.DumpErr = fmt.Errorf("saving it to %s: %w", s.opts.ErroredPath, err)
	} else {
		werr.ErroredPath = s.opts.ErroredPath
	}
	return werr
}
