package etcd

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/llorch/llorch/internal/etcdtest"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/statetest"
)

// shared is the etcd server most tests use, each under its own prefix.
var shared *etcdtest.Server

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llorch-etcd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared, err = etcdtest.Run(dir, etcdtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = shared.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

// newPrefix is a prefix no other test uses.
func newPrefix() string { return fmt.Sprintf("test/%d-%s/", prefixes.Add(1), uuid.NewString()[:8]) }

// open returns a Store on endpoint under prefix, closed when t ends.
func open(t *testing.T, endpoint, prefix string, tune func(*Options)) *Store {
	t.Helper()
	opts := Options{
		Endpoints: []string{endpoint}, Prefix: prefix, Version: "0.1.0",
		ErroredPath: filepath.Join(t.TempDir(), "errored.state.json"),
		LockTTL:     2 * time.Second, DialTimeout: 2 * time.Second, RequestTimeout: 2 * time.Second,
	}
	if tune != nil {
		tune(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func conformance(t *testing.T, tune func(*Options)) {
	statetest.Run(t, func(t *testing.T) statetest.Backend {
		prefix := newPrefix()
		errored := filepath.Join(t.TempDir(), "errored.state.json")
		return statetest.Backend{
			Open: func(t *testing.T) state.Store {
				return open(t, shared.Endpoint, prefix, func(o *Options) {
					o.ErroredPath = errored
					if tune != nil {
						tune(o)
					}
				})
			},
			ErroredPath: errored,
		}
	})
}

func TestConformance(t *testing.T) { conformance(t, nil) }

// The same suite with every state cut in many parts, staged over several
// transactions.
func TestConformanceInManyParts(t *testing.T) {
	conformance(t, func(o *Options) { o.PartSize, o.TxnBytes = 64, 300 })
}

// bigState is n pools of two replicas each, with what makes real states
// differ from pool to pool: spec hashes, pids, ports, times, paths.
func bigState(n int) *state.State {
	st := state.New(uuid.NewString())
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		name := fmt.Sprintf("p%04d", i)
		sum := sha256.Sum256([]byte(name))
		st.Pools["pool."+name] = &state.Pool{
			Engine:   "llamacpp",
			SpecHash: "sha256:" + hex.EncodeToString(sum[:]),
			Spec: &state.Spec{
				Engine: "llamacpp", Replicas: 2, Host: "127.0.0.1", Port: 20000 + 2*i, Ctx: 4096,
				Model:   state.ModelSpec{Ref: "file:/srv/models/q.gguf"},
				Devices: []int{}, Flags: []string{"--parallel", "4"},
				Health:  state.HealthSpec{Path: "/health", Interval: "100ms", StartTimeout: "2m0s", LiveInterval: "5s", Failures: 3},
				Restart: state.RestartSpec{Policy: "always", InitialBackoff: "1s", MaxBackoff: "1m0s", Multiplier: 2, Jitter: 0.1, ResetAfter: "5m0s", MaxFailures: 5, Cooldown: "5m0s"},
				Drain:   state.DrainSpec{Deadline: "30s"},
				Update:  state.UpdateSpec{Strategy: "create_before_destroy"},
			},
			Prepared: &state.Prepared{
				BinaryPath: "/usr/local/bin/llama-server", Args: []string{"--parallel", "4", "--metrics", "--n-gpu-layers", "0"},
				Host: "127.0.0.1", Port: 20000 + 2*i, ModelPath: "/srv/models/q.gguf", EngineVersion: "llamacpp-b6600-cpu",
				BinarySize: 9_000_000, BinaryMtime: t0, ModelSize: 400_000_000, ModelMtime: t0,
			},
		}
		for r := range 2 {
			st.Pools["pool."+name].Replicas = append(st.Pools["pool."+name].Replicas, &state.Replica{
				ID: fmt.Sprintf("r%d", r), Port: 20000 + 2*i + r, PID: 100000 + 7*i + r, SupervisorPID: 200000 + 7*i + r,
				Status: state.StatusReady, RunDir: fmt.Sprintf(".llorch/run/%s-r%d", name, r),
				Handoff:   fmt.Sprintf(".llorch/handoff/%s-r%d.json", name, r),
				StartedAt: t0.Add(time.Duration(i*7919+r) * time.Microsecond), ReadyAt: t0.Add(time.Duration(i*7919+r)*time.Microsecond + 1234567*time.Nanosecond),
			})
		}
	}
	return st
}

// storedHeader reads the header as stored.
func storedHeader(t *testing.T, s *Store) *header {
	t.Helper()
	h, _, err := s.getHeader(t.Context(), 0)
	if err != nil || h == nil {
		t.Fatalf("reading the header: %v, %v", h, err)
	}
	return h
}

// A thousand pools fit in one part and one request, far under etcd's
// 1.5 MiB.
func TestThousandPoolsFitInOneRequest(t *testing.T) {
	s := open(t, shared.Endpoint, newPrefix(), nil)
	st := bigState(1000)
	raw, _ := state.Encode(st)
	if err := s.Write(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	h := storedHeader(t, s)
	t.Logf("1000 pools: %d bytes of JSON stored as %d bytes", len(raw), h.Current.Size)
	if h.Current.Parts != 1 || h.Current.Size > 1<<20/2 {
		t.Errorf("1000 pools stored in %d parts of %d bytes in all; want one part under 512 KiB", h.Current.Parts, h.Current.Size)
	}
	got, err := open(t, shared.Endpoint, s.opts.Prefix, nil).Read(t.Context())
	if err != nil || len(got.Pools) != 1000 {
		t.Fatalf("read back %v pools, %v", len(got.Pools), err)
	}
}

// A state that does not compress is cut in parts and staged over several
// requests, each under etcd's default request limit, and reads back whole.
func TestIncompressibleStateIsSplitAcrossRequests(t *testing.T) {
	s := open(t, shared.Endpoint, newPrefix(), nil)
	st := bigState(10)
	noise := make([]byte, 1536)
	for i := range 2000 { // about 4 MB of random labels
		_, _ = rand.Read(noise)
		st.Pools[fmt.Sprintf("pool.n%04d", i)] = &state.Pool{Engine: "llamacpp", Spec: &state.Spec{Labels: map[string]string{"noise": hex.EncodeToString(noise)}}, Replicas: []*state.Replica{}}
	}
	if err := s.Write(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), st); err != nil { // and over itself, keeping a backup of that size
		t.Fatal(err)
	}
	h := storedHeader(t, s)
	if h.Current.Parts < 3 || h.Current.Serial != 2 || h.Backup == nil || h.Backup.Serial != 1 {
		t.Errorf("header = %+v, want serial 2 in many parts, serial 1 as the backup", h)
	}
	other := open(t, shared.Endpoint, s.opts.Prefix, nil)
	got, err := other.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := state.Encode(st)
	have, _ := state.Encode(got)
	if string(want) != string(have) {
		t.Error("the state read back differs from the one written")
	}
	if bk, err := other.ReadBackup(t.Context()); err != nil || bk.Serial != 1 || len(bk.Pools) != len(st.Pools) {
		t.Errorf("backup: %v", err)
	}
}

// Parts of states older than the backup are deleted by the write that
// makes them so.
func TestOnlyTheCurrentStateAndTheBackupAreKept(t *testing.T) {
	s := open(t, shared.Endpoint, newPrefix(), func(o *Options) { o.PartSize = 100 })
	st := statetest.Sample(uuid.NewString())
	for range 5 {
		if err := s.Write(t.Context(), st); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.cli.Get(t.Context(), s.partsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	serials := map[string]bool{}
	for _, kv := range resp.Kvs {
		serials[strings.Split(strings.TrimPrefix(string(kv.Key), s.partsPrefix), "-")[0]] = true
	}
	if len(serials) != 2 || !serials[fmt.Sprintf("%020d", 5)] || !serials[fmt.Sprintf("%020d", 4)] {
		t.Errorf("stored serials = %v, want 5 (current) and 4 (backup) only", serials)
	}
}

// A holder whose lease stops being kept alive (kill -9, a partition)
// loses the lock within the TTL, and its writes are refused: fenced.
func TestLockDiesWithItsHolderAndFencesItsWrites(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix()
	a := open(t, shared.Endpoint, prefix, func(o *Options) { o.LockTTL = time.Second })
	b := open(t, shared.Endpoint, prefix, func(o *Options) { o.LockTTL = time.Second })
	if _, err := a.Lock(ctx, state.LockInfo{Operation: "apply"}); err != nil {
		t.Fatal(err)
	}
	st, err := a.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Pools = statetest.Sample(st.Lineage).Pools
	if err := a.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	// a stops keeping its lease alive, as a paused or cut-off process.
	a.held.lease.session.Orphan()

	id, err := state.LockWithTimeout(ctx, b, state.LockInfo{Operation: "apply"}, 10*time.Second)
	if err != nil {
		t.Fatalf("b did not get the lock after a's lease ran out: %v", err)
	}
	bst, err := b.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bst.Pools["pool.chat"].Replicas[0].PID = 77
	if err := b.Write(ctx, bst); err != nil {
		t.Fatal(err)
	}

	select {
	case <-a.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("a was not told it lost its lock")
	}
	st.Pools["pool.chat"].Replicas[0].PID = 13
	err = a.Write(ctx, st)
	var lle *LockLostError
	var we *state.WriteError
	if !errors.As(err, &lle) || !errors.As(err, &we) || we.ErroredPath == "" {
		t.Fatalf("stale holder's write: %v, want a *LockLostError in a *state.WriteError with the state dumped", err)
	}
	if !strings.Contains(err.Error(), "is no longer held by this llorch") || !strings.Contains(err.Error(), "llorch state push "+we.ErroredPath) {
		t.Errorf("error does not explain: %v", err)
	}
	got, err := open(t, shared.Endpoint, prefix, nil).Read(ctx)
	if err != nil || got.Serial != 2 || got.Pools["pool.chat"].Replicas[0].PID != 77 {
		t.Errorf("stored = serial %d pid %d (%v), want b's write", got.Serial, got.Pools["pool.chat"].Replicas[0].PID, err)
	}
	if err := b.Unlock(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// The fence holds even when the stale holder's Store has not noticed: the
// transaction compares the lock key's create revision.
func TestFencedWriteOfAHolderThatHasNotNoticed(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix()
	a := open(t, shared.Endpoint, prefix, nil)
	b := open(t, shared.Endpoint, prefix, nil)
	if _, err := a.Lock(ctx, state.LockInfo{}); err != nil {
		t.Fatal(err)
	}
	st, _ := a.Read(ctx)
	// Another lock takes the key's place behind a's back: a's lease is
	// revoked and b locks, while a's keepalive has not told it yet.
	if _, err := a.cli.Revoke(ctx, a.held.lease.id()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, state.LockInfo{}); err != nil {
		t.Fatal(err)
	}
	fence, held := a.fence(0)
	_, err := a.fencedCommit(ctx, fence, held, &observed{}, []clientv3.Op{clientv3.OpPut(a.headerKey, "x")})
	var lle *LockLostError
	if !errors.As(err, &lle) {
		t.Fatalf("fenced commit of a stale holder: %v, want a *LockLostError", err)
	}
	if h, _, _ := b.getHeader(ctx, 0); h != nil {
		t.Error("the stale holder's write landed")
	}
	_ = st
}

// force-unlock revokes a lock whose holder still runs; the holder learns
// it lost the lock.
func TestForceUnlockRevokesALiveLock(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix()
	holder := open(t, shared.Endpoint, prefix, nil)
	id, err := holder.Lock(ctx, state.LockInfo{Operation: "apply", Who: "ci@runner"})
	if err != nil {
		t.Fatal(err)
	}
	other := open(t, shared.Endpoint, prefix, nil)
	_, err = other.Lock(ctx, state.LockInfo{})
	var le *state.LockError
	if !errors.As(err, &le) || le.Info.ID != id || !strings.Contains(le.Info.Path, prefix+"lock") {
		t.Fatalf("Lock while held: %v (%+v), want the holder's info with the lock key", err, le)
	}
	if err := other.ForceUnlock(ctx, id); err != nil {
		t.Fatalf("ForceUnlock: %v", err)
	}
	select {
	case <-holder.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder was not told it lost its lock")
	}
	if _, err := other.Lock(ctx, state.LockInfo{}); err != nil {
		t.Errorf("Lock after force-unlock: %v", err)
	}
}

// A lock waiter is woken by the release itself.
func TestWaitUnlockedReturnsOnRelease(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix()
	holder, waiter := open(t, shared.Endpoint, prefix, nil), open(t, shared.Endpoint, prefix, nil)
	id, err := holder.Lock(ctx, state.LockInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waiter.Lock(ctx, state.LockInfo{}); err == nil {
		t.Fatal("second lock succeeded")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		waiter.WaitUnlocked(ctx)
	}()
	select {
	case <-done:
		t.Fatal("WaitUnlocked returned while the lock is held")
	case <-time.After(200 * time.Millisecond):
	}
	if err := holder.Unlock(ctx, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WaitUnlocked did not return after the release")
	}
}

// Prefetch reads the state before the lock; Read under the lock uses it
// only if the lock saw the same header.
func TestPrefetch(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix()
	seed := statetest.Sample(uuid.NewString())
	if err := open(t, shared.Endpoint, prefix, nil).Write(ctx, seed); err != nil {
		t.Fatal(err)
	}
	t.Run("unchanged", func(t *testing.T) {
		s := open(t, shared.Endpoint, prefix, nil)
		s.Prefetch(ctx)
		pre := s.prefetched
		if pre == nil || s.spare == nil {
			t.Fatal("Prefetch read nothing or granted no lease")
		}
		id, err := s.Lock(ctx, state.LockInfo{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Unlock(ctx, id)
		if st, err := s.Read(ctx); err != nil || st != pre.st {
			t.Errorf("Read = %p, %v; want the prefetched state", st, err)
		}
	})
	t.Run("written in between", func(t *testing.T) {
		s := open(t, shared.Endpoint, prefix, nil)
		s.Prefetch(ctx)
		w := open(t, shared.Endpoint, prefix, nil)
		st, _ := w.Read(ctx)
		st.Pools["pool.chat"].Replicas[0].PID = 55
		if err := w.Write(ctx, st); err != nil {
			t.Fatal(err)
		}
		id, err := s.Lock(ctx, state.LockInfo{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Unlock(ctx, id)
		if got, err := s.Read(ctx); err != nil || got.Pools["pool.chat"].Replicas[0].PID != 55 {
			t.Errorf("Read after a write in between: %v; want the newer state", err)
		}
	})
}

// What was stored wrongly is a CorruptError naming the backup, and never
// overwritten but by a forced push.
func TestCorruptState(t *testing.T) {
	ctx := t.Context()
	prefix := newPrefix()
	s := open(t, shared.Endpoint, prefix, nil)
	st := statetest.Sample(uuid.NewString())
	for range 2 {
		if err := s.Write(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	h := storedHeader(t, s)
	if _, err := s.cli.Put(ctx, s.partKey(h.Current, 0), "garbage"); err != nil {
		t.Fatal(err)
	}
	r := open(t, shared.Endpoint, prefix, nil)
	_, err := r.Read(ctx)
	var ce *state.CorruptError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "does not match its checksum") ||
		!strings.Contains(err.Error(), "the previous version is the backup (serial 1") || !strings.Contains(err.Error(), "llorch state pull -backup") {
		t.Fatalf("Read of a corrupt state: %v", err)
	}
	if err := r.Write(ctx, st); !errors.As(err, &ce) {
		t.Errorf("Write over a corrupt state: %v, want it refused", err)
	}
	bk, err := r.ReadBackup(ctx)
	if err != nil || bk.Serial != 1 {
		t.Fatalf("ReadBackup: %v", err)
	}
	if err := r.Push(ctx, bk, false); !errors.As(err, &ce) {
		t.Errorf("unforced push over a corrupt state: %v, want it refused", err)
	}
	if err := r.Push(ctx, bk, true); err != nil {
		t.Fatalf("forced push of the backup: %v", err)
	}
	if got, err := r.Read(ctx); err != nil || got.Serial != 3 {
		t.Errorf("after restoring the backup: %v, %v", got, err)
	}

	if _, err := s.cli.Put(ctx, s.headerKey, "{"); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, shared.Endpoint, prefix, nil).Read(ctx); !errors.As(err, &ce) || !strings.Contains(err.Error(), "is not valid JSON") {
		t.Errorf("Read with a corrupt header: %v", err)
	}
}

// Nothing answers: the error comes within the dial timeout and names the
// endpoint and why.
func TestUnreachable(t *testing.T) {
	l := etcdtest.ClosedPort(t)
	s := open(t, "http://"+l, newPrefix(), func(o *Options) { o.DialTimeout = 500 * time.Millisecond })
	start := time.Now()
	_, err := s.Read(t.Context())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("Read: %v, want an *UnreachableError", err)
	}
	for _, want := range []string{"etcd cannot be reached (etcd http://" + l, "http://" + l + ": dial tcp " + l + ": connect: connection refused", "fix endpoints in the backend \"etcd\" block"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v\nwant it to contain %q", err, want)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the error took %s", time.Since(start))
	}
	// Found down once, the Store does not wait again.
	start = time.Now()
	if _, err := s.Lock(t.Context(), state.LockInfo{}); !errors.As(err, &ue) {
		t.Errorf("Lock: %v, want an *UnreachableError", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("the second request waited %s", d)
	}
}

// etcd killed while a command writes: the write fails, is dumped, the
// Store is lost and later writes fail at once; restarted, etcd holds the
// last state written.
func TestKilledMidRunAndRestarted(t *testing.T) {
	ctx := t.Context()
	srv := etcdtest.Start(t, etcdtest.Options{})
	prefix := newPrefix()
	s := open(t, srv.Endpoint, prefix, func(o *Options) { o.RequestTimeout = time.Second })
	if _, err := s.Lock(ctx, state.LockInfo{Operation: "apply"}); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Read(ctx)
	st.Pools = statetest.Sample(st.Lineage).Pools
	if err := s.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	st.Pools["pool.chat"].Replicas[0].PID = 2
	err := s.Write(ctx, st)
	var ue *UnreachableError
	var we *state.WriteError
	if !errors.As(err, &ue) || !errors.As(err, &we) || we.ErroredPath == "" {
		t.Fatalf("write with etcd gone: %v", err)
	}
	select {
	case <-s.Lost():
	default:
		t.Error("the Store is not lost after etcd stopped answering")
	}
	start := time.Now()
	st.Pools["pool.chat"].Replicas[0].PID = 3
	if err := s.Write(ctx, st); !errors.As(err, &we) {
		t.Errorf("later write: %v", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Error("a write after the Store was lost waited for etcd")
	}
	data, _ := os.ReadFile(we.ErroredPath)
	dumped, err := state.Decode(data, we.ErroredPath, "")
	if err != nil || dumped.Pools["pool.chat"].Replicas[0].PID != 3 || dumped.Serial != 2 {
		t.Errorf("errored file: %v, %v; want the last state at serial 2", dumped, err)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	got, err := open(t, srv.Endpoint, prefix, nil).Read(ctx)
	if err != nil || got.Serial != 1 || got.Pools["pool.chat"].Replicas[0].PID != 4242 {
		t.Fatalf("after the restart: %v, %v; want the state written before the kill", got, err)
	}
	// The dump is pushed back as the next serial.
	if err := open(t, srv.Endpoint, prefix, nil).Push(ctx, dumped, false); err != nil {
		t.Errorf("pushing the errored state back: %v", err)
	}
}

func TestNewRefusesWhatCannotWork(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "at least one endpoint") {
		t.Errorf("New without endpoints: %v", err)
	}
	_, err := New(Options{Endpoints: []string{"https://127.0.0.1:1"}, CAFile: filepath.Join(t.TempDir(), "missing.pem")})
	if err == nil || !strings.Contains(err.Error(), "the tls { ca_file } of the backend \"etcd\" block cannot be read: open ") || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("New with a missing CA file: %v", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Endpoints: []string{"https://127.0.0.1:1"}, CAFile: notPEM})
	if err == nil || !strings.Contains(err.Error(), notPEM+", holds no PEM certificate") {
		t.Errorf("New with a CA file holding no certificate: %v", err)
	}
}

// A paused etcd accepts connections but answers nothing: still an error
// within the timeout, not a hang.
func TestPausedServer(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	defer srv.Resume()
	s := open(t, srv.Endpoint, newPrefix(), func(o *Options) { o.DialTimeout = 500 * time.Millisecond })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := s.Read(ctx)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "accepts connections but did not answer") {
		t.Errorf("Read from a paused etcd: %v", err)
	}
}
