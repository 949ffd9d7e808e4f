package etcd

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/google/uuid"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/llorch/llorch/state"
)

// headerVersion is the format of the header record this build writes.
const headerVersion = 1

// header is the record at P state.
type header struct {
	Version int    `json:"version"`
	Lineage string `json:"lineage"`
	Current body   `json:"current"`
	Backup  *body  `json:"backup,omitempty"`
}

// body says where one stored state is and how to check it.
type body struct {
	Lineage string `json:"lineage"`
	Serial  uint64 `json:"serial"`
	// Key is where its parts are, under P state/: the serial, then an id
	// of the write, so that two writers racing for one serial never mix
	// their parts (the fence lets one header through).
	Key      string `json:"key"`
	Encoding string `json:"encoding"` // "gzip"
	Parts    int    `json:"parts"`
	Size     int    `json:"size"`   // stored bytes, all parts
	Length   int    `json:"length"` // bytes of state.Encode's output
	SHA256   string `json:"sha256"` // of the stored bytes
}

// head is what the write rules see of h (nil: nothing stored).
func (h *header) head() *state.Head {
	if h == nil {
		return nil
	}
	return &state.Head{Lineage: h.Lineage, Serial: h.Current.Serial}
}

// bodyKey is the key of a new state's parts: serial first, so that
// states sort by serial and a range deletes every state older than one.
func bodyKey(serial uint64, id string) string { return fmt.Sprintf("%020d-%s", serial, id) }

// serialPrefix is where the parts of the states of serial and above
// begin.
func (s *Store) serialPrefix(serial uint64) string {
	return fmt.Sprintf("%s%020d", s.partsPrefix, serial)
}

func (s *Store) partKey(b body, part int) string {
	return fmt.Sprintf("%s%s/%06d", s.partsPrefix, b.Key, part)
}

// prefetch is a state read ahead of the locked Read, and the header
// revision it was read at.
type prefetch struct {
	rev int64
	st  *state.State
}

// Prefetch reads the state and grants the lease of the coming Lock ahead
// of time, typically while the configuration is parsed: both are round
// trips to etcd. Read, once the lock is held, uses the state only if the
// lock transaction saw the same header. Problems are left for Read and
// Lock to report.
func (s *Store) Prefetch(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.prepareLease(ctx)
	}()
	st, rev, err := s.readCurrent(ctx)
	<-done
	if err != nil {
		return
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.prefetched = &prefetch{rev: rev, st: st}
}

// Read returns the stored state. With none yet it returns an empty state
// with a new lineage and serial 0.
func (s *Store) Read(ctx context.Context) (*state.State, error) {
	s.stateMu.Lock()
	pre := s.prefetched
	s.prefetched = nil
	s.stateMu.Unlock()
	if pre != nil {
		s.lockMu.Lock()
		sawRev, saw := s.lockSawHeaderRev, s.held != nil
		s.lockMu.Unlock()
		if saw && sawRev == pre.rev {
			return pre.st, nil // the lock transaction saw this very header
		}
	}
	st, _, err := s.readCurrent(ctx)
	return st, err
}

// readCurrent reads the header and the state it points at, at one
// revision, and remembers the header for the next write.
func (s *Store) readCurrent(ctx context.Context) (*state.State, int64, error) {
	for attempt := 0; ; attempt++ {
		hdr, rev, at, err := s.getHeaderAt(ctx, 0)
		if err != nil {
			return nil, 0, err
		}
		if hdr == nil {
			s.observe(&observed{})
			st := state.New(uuid.NewString())
			st.LlorchVersion = s.opts.Version
			return st, 0, nil
		}
		st, err := s.readBody(ctx, hdr.Current, at, s.backupName(hdr))
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			continue // compacted between the two reads: read again
		}
		if err != nil {
			return nil, 0, err
		}
		s.observe(&observed{rev: rev, at: at, hdr: hdr})
		return st, rev, nil
	}
}

// ReadBackup returns the state the last write replaced.
func (s *Store) ReadBackup(ctx context.Context) (*state.State, error) {
	for attempt := 0; ; attempt++ {
		hdr, _, at, err := s.getHeaderAt(ctx, 0)
		if err != nil {
			return nil, err
		}
		if hdr == nil || hdr.Backup == nil {
			return nil, state.ErrNoBackup
		}
		st, err := s.readBody(ctx, *hdr.Backup, at, "")
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			continue
		}
		return st, err
	}
}

func (s *Store) observe(o *observed) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.known = o
}

// backupName is how a corrupt state's message points at its backup.
func (s *Store) backupName(h *header) string {
	if h.Backup == nil {
		return ""
	}
	return fmt.Sprintf("the backup (serial %d, in %s%s/)", h.Backup.Serial, s.partsPrefix, h.Backup.Key)
}

// getHeader reads the header, at rev when rev > 0; nil when there is none.
// It returns the header's mod revision (what a write fences on).
func (s *Store) getHeader(ctx context.Context, rev int64) (*header, int64, error) {
	h, modRev, _, err := s.getHeaderAt(ctx, rev)
	return h, modRev, err
}

// getHeaderAt is getHeader that also returns the revision it read at,
// where the parts are read so that the two reads are one snapshot.
func (s *Store) getHeaderAt(ctx context.Context, rev int64) (*header, int64, int64, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var opts []clientv3.OpOption
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		var err error
		resp, err = cli.Get(ctx, s.headerKey, opts...)
		return err
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("reading the state header: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, resp.Header.Revision, nil
	}
	hdr, err := s.decodeHeader(resp.Kvs[0])
	return hdr, resp.Kvs[0].ModRevision, resp.Header.Revision, err
}

func (s *Store) decodeHeader(kv *mvccpb.KeyValue) (*header, error) {
	var h header
	if err := json.Unmarshal(kv.Value, &h); err != nil {
		return nil, s.corrupt(fmt.Sprintf("its header (key %s) is not valid JSON: %v", s.headerKey, err), "")
	}
	if h.Version > headerVersion {
		return nil, &state.VersionError{Path: s.where, Found: h.Version, Supported: headerVersion}
	}
	if h.Version < 1 || h.Lineage == "" || h.Current.Parts < 1 || h.Current.Key == "" {
		return nil, s.corrupt(fmt.Sprintf("its header (key %s) is not a llorch state header", s.headerKey), "")
	}
	return &h, nil
}

func (s *Store) corrupt(reason, backup string) error {
	ce := &state.CorruptError{Path: s.where, BackupPath: backup, Reason: reason}
	if backup != "" {
		ce.Restore = "llorch state pull -backup prints the backup; check it, then llorch state push -force FILE stores it"
	}
	return ce
}

// readBody reads the parts of b at revision rev and decodes them.
func (s *Store) readBody(ctx context.Context, b body, rev int64, backup string) (*state.State, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		resp, err = cli.Get(ctx, s.partKey(b, 0),
			clientv3.WithRange(s.partKey(b, b.Parts)), clientv3.WithRev(rev))
		return err
	})
	if err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil, rpctypes.ErrCompacted
		}
		return nil, fmt.Errorf("reading the state (serial %d): %w", b.Serial, err)
	}
	if len(resp.Kvs) != b.Parts {
		return nil, s.corrupt(fmt.Sprintf("the state of serial %d has %d of its %d parts", b.Serial, len(resp.Kvs), b.Parts), backup)
	}
	stored := make([]byte, 0, b.Size)
	for _, kv := range resp.Kvs { // sorted by key, so by part
		stored = append(stored, kv.Value...)
	}
	sum := sha256.Sum256(stored)
	if len(stored) != b.Size || hex.EncodeToString(sum[:]) != b.SHA256 {
		return nil, s.corrupt(fmt.Sprintf("the state of serial %d does not match its checksum", b.Serial), backup)
	}
	data, err := decompress(b.Encoding, stored, b.Length)
	if err != nil {
		return nil, s.corrupt(fmt.Sprintf("the state of serial %d cannot be decompressed: %v", b.Serial, err), backup)
	}
	st, err := state.Decode(data, s.where, backup)
	if err != nil {
		var ce *state.CorruptError
		if errors.As(err, &ce) && backup != "" {
			ce.Restore = "llorch state pull -backup prints the backup; check it, then llorch state push -force FILE stores it"
		}
		return nil, err
	}
	if st.Lineage != b.Lineage || st.Serial != b.Serial {
		return nil, s.corrupt(fmt.Sprintf("the state of serial %d holds lineage %s serial %d, but its header says lineage %s", b.Serial, st.Lineage, st.Serial, b.Lineage), backup)
	}
	return st, nil
}

// compress is how states are stored: gzip at its fastest level, which
// costs a few ms for a thousand pools and shrinks them tenfold or more.
func compress(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(data) / 8)
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decompress(encoding string, stored []byte, length int) ([]byte, error) {
	if encoding != "gzip" {
		return nil, fmt.Errorf("unknown encoding %q", encoding)
	}
	zr, err := gzip.NewReader(bytes.NewReader(stored))
	if err != nil {
		return nil, err
	}
	out := bytes.NewBuffer(make([]byte, 0, length+bytes.MinRead))
	if _, err := out.ReadFrom(zr); err != nil {
		return nil, err
	}
	if err := zr.Close(); err != nil {
		return nil, err
	}
	if out.Len() != length {
		return nil, io.ErrUnexpectedEOF
	}
	return out.Bytes(), nil
}
