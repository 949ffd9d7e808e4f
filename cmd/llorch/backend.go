package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/afero"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/internal/version"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/etcd"
	"github.com/llorch/llorch/state/local"
)

// backendRecordFile, in <state_dir>, is which backend `llorch init` last
// set up, as Terraform's .terraform/terraform.tfstate: a command finding
// the llorch block changed since refuses to run against a backend that
// does not hold the state.
const backendRecordFile = "backend.json"

// backendRecord is the backend block as llorch init recorded it, without
// credentials: enough to reach it again for -migrate-state.
type backendRecord struct {
	Type        string             `json:"type"`
	Endpoints   []string           `json:"endpoints"`
	Prefix      string             `json:"prefix"`
	DialTimeout string             `json:"dial_timeout,omitempty"`
	TLS         *config.BackendTLS `json:"tls,omitempty"`
}

func (r *backendRecord) backend() *config.Backend {
	if r == nil {
		return nil
	}
	b := &config.Backend{Type: r.Type, Endpoints: r.Endpoints, Prefix: r.Prefix, TLS: r.TLS, LockTTL: config.DefaultEtcdLockTTL, DialTimeout: config.DefaultEtcdDialTimeout}
	if d, err := time.ParseDuration(r.DialTimeout); err == nil && d > 0 {
		b.DialTimeout = d
	}
	return b
}

func recordOf(b *config.Backend) *backendRecord {
	if b == nil {
		return nil
	}
	return &backendRecord{Type: b.Type, Endpoints: b.Endpoints, Prefix: b.Prefix, DialTimeout: b.DialTimeout.String(), TLS: b.TLS}
}

// describeBackend names a backend for messages.
func describeBackend(b *config.Backend, d string) string {
	if b == nil {
		return "the local file " + filepath.Join(d, local.StateFile)
	}
	return fmt.Sprintf("etcd (%s, prefix %s)", strings.Join(b.Endpoints, ", "), b.Prefix)
}

func (m *meta) recordPath(set config.Settings) string {
	return filepath.Join(m.dirsOf(set).State, backendRecordFile)
}

// readBackendRecord returns what llorch init recorded; nil when it
// recorded nothing (the local backend, or init never ran).
func (m *meta) readBackendRecord(set config.Settings) (*backendRecord, error) {
	data, err := afero.ReadFile(m.fs, m.recordPath(set))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r backendRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", m.recordPath(set), err)
	}
	return &r, nil
}

func (m *meta) writeBackendRecord(set config.Settings) error {
	if set.Backend == nil {
		err := m.fs.Remove(m.recordPath(set))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	data, err := json.MarshalIndent(recordOf(set.Backend), "", "  ")
	if err != nil {
		return err
	}
	if err := m.fs.MkdirAll(m.dirsOf(set).State, 0o700); err != nil {
		return err
	}
	return atomicfile.Write(m.fs, m.recordPath(set), append(data, '\n'), 0o600)
}

// openStore opens the store the llorch {} block names, refusing (with a
// diagnostic) a backend that llorch init has not set up while the state is
// elsewhere. The store is closed when the command ends.
func (m *meta) openStore(set config.Settings) (state.Store, bool) {
	if !m.checkBackend(set) {
		return nil, false
	}
	s, err := m.store(set, set.Backend)
	if err != nil {
		m.fail("Failed to open the state backend", err)
		return nil, false
	}
	return s, true
}

// store opens the state of backend b (nil: the local file), with the
// llorch {} block's directories.
func (m *meta) store(set config.Settings, b *config.Backend) (state.Store, error) {
	d := m.dirsOf(set)
	errored := filepath.Join(m.dir, "errored.state.json")
	if b == nil {
		return local.New(m.fs, relTo(m.dir, d.State), local.Options{ErroredPath: errored, Version: version.Version}), nil
	}
	opts := etcd.Options{
		Endpoints: b.Endpoints, Prefix: b.Prefix, LockTTL: b.LockTTL, DialTimeout: b.DialTimeout,
		Username: os.Getenv("LLORCH_ETCD_USERNAME"), Password: os.Getenv("LLORCH_ETCD_PASSWORD"),
		ErroredPath: errored, Fs: m.fs, Version: version.Version,
	}
	if b.TLS != nil {
		opts.CAFile, opts.CertFile, opts.KeyFile = m.abs(b.TLS.CAFile), m.abs(b.TLS.CertFile), m.abs(b.TLS.KeyFile)
	}
	s, err := etcd.New(opts)
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, s)
	return s, nil
}

func (m *meta) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(m.dir, p)
}

// checkBackend is the guard of every command but init: the state must be
// where llorch init last put it.
func (m *meta) checkBackend(set config.Settings) bool {
	rec, err := m.readBackendRecord(set)
	if err != nil {
		m.fail("Failed to read the backend record", err)
		return false
	}
	now := describeBackend(set.Backend, relTo(m.dir, m.dirsOf(set).State))
	if rec != nil && rec.backend().Identity() != set.Backend.Identity() {
		m.errorf("Backend configuration changed",
			"The llorch block stores the state in %s, but llorch init last set up %s.\n\nRun \"llorch init -migrate-state\" to copy the state from there, or \"llorch init -reconfigure\" to use the new backend as it is.",
			now, describeBackend(rec.backend(), relTo(m.dir, m.dirsOf(set).State)))
		return false
	}
	if rec == nil && set.Backend != nil {
		if n := m.localPools(set); n > 0 {
			m.errorf("Backend initialization required",
				"The llorch block stores the state in %s, but %s holds a state of %d pool(s) that is not there.\n\nRun \"llorch init -migrate-state\" to copy it, or \"llorch init -reconfigure\" to use the backend's state and leave the local file alone.",
				now, filepath.Join(relTo(m.dir, m.dirsOf(set).State), local.StateFile), n)
			return false
		}
	}
	return true
}

// localPools is how many pools the local state file holds (0 when there
// is none, or it cannot be read: then there is nothing it would lose).
func (m *meta) localPools(set config.Settings) int {
	data, err := afero.ReadFile(m.fs, filepath.Join(m.dirsOf(set).State, local.StateFile))
	if err != nil {
		return 0
	}
	st, err := state.Decode(data, "", "")
	if err != nil {
		return 1 // something is there: do not guess it away
	}
	return len(st.Pools)
}

// lostContext is ctx, cancelled also when s can no longer write (an etcd
// store whose lock lease ran out, or whose etcd stopped answering), so
// that apply starts nothing it could not record.
func lostContext(ctx context.Context, s state.Store) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	l, ok := s.(interface{ Lost() <-chan struct{} })
	if !ok {
		return ctx, cancel
	}
	go func() {
		select {
		case <-l.Lost():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// saveIfLost completes runErr when s was lost during the apply but no
// write said so (the apply was stopped before anything new was recorded):
// the state the apply ended with goes to errored.state.json, and the
// error says why it is not in the backend.
func saveIfLost(ctx context.Context, s state.Store, out *state.State, runErr error) error {
	l, ok := s.(interface{ Lost() <-chan struct{} })
	if !ok || out == nil {
		return runErr
	}
	select {
	case <-l.Lost():
	default:
		return runErr
	}
	if errors.As(runErr, new(*state.WriteError)) {
		return runErr // a write failed and said why
	}
	err := s.Write(ctx, out)
	if err == nil {
		return runErr
	}
	return multierror.Append(runErr, fmt.Errorf("saving state: %w", err))
}

// backendFailure is the heading and text of an error that etcd itself
// caused (not reachable, credentials refused), whatever the command was
// doing when it came: that is what the user must fix, so it heads the
// message rather than "Error acquiring the state lock". A failed state
// write keeps its own message, which says where the state went instead.
func backendFailure(err error) (string, error, bool) {
	if errors.As(err, new(*state.WriteError)) {
		return "", nil, false
	}
	var ue *etcd.UnreachableError
	if errors.As(err, &ue) {
		if ue.Untrusted {
			return "etcd's TLS certificate is not trusted", ue, true
		}
		return "etcd is not reachable", ue, true
	}
	var ae *etcd.AuthError
	if errors.As(err, &ae) {
		if errors.Is(ae, rpctypes.ErrPermissionDenied) {
			return "etcd denied access", ae, true
		}
		return "etcd authentication failed", ae, true
	}
	return "", nil, false
}

// closeAll closes what the command opened (etcd connections).
func closeAll(cs []io.Closer) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// backendFlags are init's -migrate-state and -reconfigure, with the lock
// options for the migration.
type backendFlags struct {
	migrate, reconfigure bool
	lock                 lockFlags
}

func (f *backendFlags) add(fs *flag.FlagSet) {
	fs.BoolVar(&f.migrate, "migrate-state", false, "copy the state from the backend init last set up to the one the llorch block names")
	fs.BoolVar(&f.reconfigure, "reconfigure", false, "use the backend the llorch block names as it is, copying nothing")
	f.lock.add(fs)
}

// initBackend is init's first part, as Terraform's "Initializing the
// backend...": it checks that the backend the llorch block names answers,
// and when that is not the one init last set up (or the local file still
// holds pools) it copies the state there (-migrate-state) or switches
// without copying (-reconfigure), or says it must be told which.
func (m *meta) initBackend(f backendFlags) bool {
	if f.migrate && f.reconfigure {
		m.errorf("Conflicting options", "-migrate-state copies the state to the new backend and -reconfigure copies nothing: give one of them.")
		return false
	}
	cfg, ok := m.loadSettings()
	if !ok {
		return false
	}
	set := cfg.Settings
	rec, err := m.readBackendRecord(set)
	if err != nil {
		m.fail("Failed to read the backend record", err)
		return false
	}
	dir := relTo(m.dir, m.dirsOf(set).State)
	prev := rec.backend() // nil: local
	now := set.Backend
	if now == nil && prev == nil {
		return true // the local file, as always: nothing to say
	}
	fmt.Fprintf(m.stdout, "Initializing the backend...\n")
	target, err := m.store(set, now)
	if err != nil {
		m.fail("Failed to open the state backend", err)
		return false
	}
	moved := prev.Identity() != now.Identity()
	if moved && !f.migrate && !f.reconfigure {
		source, err := m.store(set, prev)
		if err != nil {
			m.fail("Failed to open the previous state backend", err)
			return false
		}
		st, err := source.Read(m.ctx)
		if err == nil && len(st.Pools) == 0 {
			moved = false // nothing there to lose
		} else {
			m.errorf("Backend configuration changed",
				"The llorch block stores the state in %s, but the state is in %s.\n\nRun \"llorch init -migrate-state\" to copy it there, or \"llorch init -reconfigure\" to use the new backend as it is and leave the old state where it is.",
				describeBackend(now, dir), describeBackend(prev, dir))
			return false
		}
	}
	if moved && f.migrate {
		if !m.migrateState(set, prev, target, dir, f.lock) {
			return false
		}
	} else if !m.checkTarget(target, now, dir) {
		return false
	}
	if err := m.writeBackendRecord(set); err != nil {
		m.fail("Failed to record the backend", err)
		return false
	}
	return true
}

// checkTarget reads the backend's state once, so init fails when it
// does not answer, and says what it holds.
func (m *meta) checkTarget(s state.Store, b *config.Backend, dir string) bool {
	st, ok := m.readState(s)
	if !ok {
		return false
	}
	if st.Serial == 0 {
		fmt.Fprintf(m.stdout, "- state in %s: empty, a new state is created there by the first apply\n\n", describeBackend(b, dir))
	} else {
		fmt.Fprintf(m.stdout, "- state in %s: serial %d, %d pool(s)\n\n", describeBackend(b, dir), st.Serial, len(st.Pools))
	}
	return true
}

// migrateState copies the state from prev to target, both locked, under
// state push's rules without -force: a target holding another registry
// is refused.
func (m *meta) migrateState(set config.Settings, prev *config.Backend, target state.Store, dir string, lf lockFlags) bool {
	source, err := m.store(set, prev)
	if err != nil {
		m.fail("Failed to open the previous state backend", err)
		return false
	}
	unlockSource, ok := m.lock(source, lf, "init -migrate-state")
	if !ok {
		return false
	}
	defer unlockSource()
	unlockTarget, ok := m.lock(target, lf, "init -migrate-state")
	if !ok {
		return false
	}
	defer unlockTarget()
	st, ok := m.readState(source)
	if !ok {
		return false
	}
	from, to := describeBackend(prev, dir), describeBackend(set.Backend, dir)
	if st.Serial == 0 {
		fmt.Fprintf(m.stdout, "- nothing to copy from %s: it holds no state\n- state in %s\n\n", from, to)
		return true
	}
	if err := target.Push(m.ctx, st, false); err != nil {
		var pe *state.PushError
		if errors.As(err, &pe) {
			m.errorf("Failed to migrate the state", "%s\n\nThe target already holds a state that the one in %s would replace (lineage %s, serial %d). Nothing was copied. If the target's state is the one to keep, run \"llorch init -reconfigure\"; to replace it, pull it aside first (llorch state pull) and use llorch state push -force.",
				sentence(err), from, pe.Stored.Lineage, pe.Stored.Serial)
			return false
		}
		m.fail("Failed to migrate the state", err)
		return false
	}
	fmt.Fprintf(m.stdout, "- copied the state (serial %d, %d pool(s)) from %s to %s\n", st.Serial, len(st.Pools), from, to)
	if prev == nil {
		// The local file is no longer the state: keep it, out of the way.
		path := filepath.Join(m.dirsOf(set).State, local.StateFile)
		if err := m.fs.Rename(path, path+".migrated"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.fail("The state was copied, but the local file could not be moved aside", err)
			return false
		}
		fmt.Fprintf(m.stdout, "- the local state file is kept as %s.migrated\n", filepath.Join(dir, local.StateFile))
	}
	fmt.Fprintln(m.stdout)
	return true
}
