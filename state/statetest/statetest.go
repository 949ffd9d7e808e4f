package statetest

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/llorch/llorch/state"
)

// Backend is one fresh, empty backend.
type Backend struct {
	// Open returns a new Store on the backend, as another llorch process
	// would open it: Stores opened twice share the state and the lock,
	// nothing else.
	Open func(t *testing.T) state.Store
	// ErroredPath is the file a failed Write of a Store from Open dumps
	// the state to, on the OS file system.
	ErroredPath string
}

// Run runs the suite; newBackend makes a fresh backend for each test.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"empty backend reads as an empty state", emptyRead},
		{"write then read round-trips through another store", roundTrip},
		{"every write takes the next serial", serials},
		{"a write of another lineage is refused and dumped", otherLineage},
		{"a write of a stale state is refused and dumped", staleWrite},
		{"the previous version is kept as the backup", backup},
		{"push follows the lineage and serial rules", push},
		{"a lock is exclusive and names its holder", lockExclusive},
		{"unlock takes only the lock's own id", unlockChecks},
		{"force-unlock refuses what is not locked or another id", forceUnlockRefusals},
		{"lock with timeout waits for the holder to release it", lockWaits},
		{"writers of the same serial race and one wins", racingWriters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t)) })
	}
}

// Sample is a state of one pool and two replicas, as apply records it.
func Sample(lineage string) *state.State {
	st := state.New(lineage)
	st.Pools["pool.chat"] = &state.Pool{
		Engine:   "llamacpp",
		SpecHash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		Spec:     &state.Spec{Engine: "llamacpp", Replicas: 2, Host: "127.0.0.1", Port: 8080, Flags: []string{"--parallel", "4"}},
		Replicas: []*state.Replica{
			{ID: "r0", Port: 8080, PID: 4242, SupervisorPID: 4241, Status: state.StatusReady},
			{ID: "r1", Port: 8081, PID: 4244, SupervisorPID: 4243, Status: state.StatusReady},
		},
	}
	return st
}

func mustRead(t *testing.T, s state.Store) *state.State {
	t.Helper()
	st, err := s.Read(t.Context())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return st
}

func mustWrite(t *testing.T, s state.Store, st *state.State) {
	t.Helper()
	if err := s.Write(t.Context(), st); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// seed stores Sample at serial 1 and returns it as written.
func seed(t *testing.T, b Backend) *state.State {
	t.Helper()
	st := Sample(uuid.NewString())
	mustWrite(t, b.Open(t), st)
	return st
}

func pid(st *state.State) int { return st.Pools["pool.chat"].Replicas[0].PID }

func emptyRead(t *testing.T, b Backend) {
	st := mustRead(t, b.Open(t))
	if st.Serial != 0 || st.Pools == nil || len(st.Pools) != 0 || st.FormatVersion != state.FormatVersion {
		t.Errorf("empty backend read as %+v, want format %d, serial 0, no pools", st, state.FormatVersion)
	}
	if _, err := uuid.Parse(st.Lineage); err != nil {
		t.Errorf("lineage %q of a new state is not a UUID", st.Lineage)
	}
	if _, err := b.Open(t).ReadBackup(t.Context()); !errors.Is(err, state.ErrNoBackup) {
		t.Errorf("ReadBackup of an empty backend: %v, want state.ErrNoBackup", err)
	}
}

func roundTrip(t *testing.T, b Backend) {
	st := seed(t, b)
	got := mustRead(t, b.Open(t))
	if got.Lineage != st.Lineage || got.Serial != 1 || pid(got) != 4242 || len(got.Pools["pool.chat"].Replicas) != 2 {
		t.Fatalf("read back %+v, want the written state at serial 1", got)
	}
	want, _ := state.Encode(st)
	have, _ := state.Encode(got)
	if string(want) != string(have) {
		t.Errorf("read back a different state:\n%s\nwant\n%s", have, want)
	}
	// Each Read is the caller's own.
	s := b.Open(t)
	first := mustRead(t, s)
	first.Pools["pool.chat"].Replicas[0].PID = 1
	if again := mustRead(t, s); pid(again) != 4242 {
		t.Error("changing one Read's result changed the next")
	}
}

func serials(t *testing.T, b Backend) {
	s := b.Open(t)
	st := mustRead(t, s)
	st.Pools = Sample(st.Lineage).Pools
	for want := uint64(1); want <= 3; want++ {
		mustWrite(t, s, st)
		if st.Serial != want {
			t.Errorf("caller's serial after write %d = %d", want, st.Serial)
		}
		if got := mustRead(t, b.Open(t)); got.Serial != want {
			t.Errorf("stored serial after write %d = %d", want, got.Serial)
		}
	}
}

// checkDumped checks that a refused Write said where the state went and
// put it there.
func checkDumped(t *testing.T, b Backend, err error, want *state.State) {
	t.Helper()
	var we *state.WriteError
	if !errors.As(err, &we) || we.ErroredPath == "" {
		t.Fatalf("error = %v, want a *state.WriteError naming the errored file", err)
	}
	if !strings.Contains(err.Error(), "the state was written to "+we.ErroredPath+" instead") {
		t.Errorf("error does not say where the state went: %v", err)
	}
	data, rerr := os.ReadFile(b.ErroredPath)
	if rerr != nil {
		t.Fatalf("reading the errored file: %v", rerr)
	}
	dumped, derr := state.Decode(data, b.ErroredPath, "")
	if derr != nil || dumped.Lineage != want.Lineage || pid(dumped) != pid(want) {
		t.Errorf("errored file = %+v (%v), want the refused state", dumped, derr)
	}
}

func otherLineage(t *testing.T, b Backend) {
	stored := seed(t, b)
	other := Sample(uuid.NewString())
	other.Pools["pool.chat"].Replicas[0].PID = 7
	err := b.Open(t).Write(t.Context(), other)
	var le *state.LineageError
	if !errors.As(err, &le) || le.Stored != stored.Lineage || le.Writing != other.Lineage {
		t.Fatalf("error = %v, want a *state.LineageError (stored %s, writing %s)", err, stored.Lineage, other.Lineage)
	}
	checkDumped(t, b, err, other)
	if got := mustRead(t, b.Open(t)); got.Lineage != stored.Lineage || got.Serial != 1 || pid(got) != 4242 {
		t.Errorf("stored state changed to %+v", got)
	}
	if other.Serial != 0 {
		t.Errorf("caller's serial = %d after a refused write, want it unchanged", other.Serial)
	}
}

func staleWrite(t *testing.T, b Backend) {
	seed(t, b)
	mine, theirs := b.Open(t), b.Open(t)
	st := mustRead(t, mine)
	other := mustRead(t, theirs)
	other.Pools["pool.chat"].Replicas[0].PID = 99
	mustWrite(t, theirs, other)

	st.Pools["pool.chat"].Replicas[0].PID = 7
	err := mine.Write(t.Context(), st)
	var se *state.StaleError
	if !errors.As(err, &se) || se.Read != 1 || se.Stored != 2 {
		t.Fatalf("error = %v, want a *state.StaleError (read 1, stored 2)", err)
	}
	checkDumped(t, b, err, st)
	if got := mustRead(t, b.Open(t)); got.Serial != 2 || pid(got) != 99 {
		t.Errorf("stored state = serial %d, pid %d; want the other writer's (2, 99)", got.Serial, pid(got))
	}
}

func backup(t *testing.T, b Backend) {
	s := b.Open(t)
	st := Sample(uuid.NewString())
	mustWrite(t, s, st)
	if _, err := s.ReadBackup(t.Context()); !errors.Is(err, state.ErrNoBackup) {
		t.Errorf("ReadBackup after the first write: %v, want state.ErrNoBackup", err)
	}
	st.Pools["pool.chat"].Replicas[0].PID = 2
	mustWrite(t, s, st)
	st.Pools["pool.chat"].Replicas[0].PID = 3
	mustWrite(t, s, st)
	bk, err := b.Open(t).ReadBackup(t.Context())
	if err != nil {
		t.Fatalf("ReadBackup: %v", err)
	}
	if bk.Serial != 2 || pid(bk) != 2 || bk.Lineage != st.Lineage {
		t.Errorf("backup = serial %d, pid %d; want the version before the last write (2, 2)", bk.Serial, pid(bk))
	}
}

func push(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t)
	lineage := uuid.NewString()

	first := Sample(lineage)
	first.Serial = 7
	if err := s.Push(ctx, first, false); err != nil {
		t.Fatalf("push into an empty backend: %v", err)
	}
	if got := mustRead(t, b.Open(t)); got.Lineage != lineage || got.Serial != 7 {
		t.Fatalf("after a push of serial 7: stored %s at %d, want %s at 7", got.Lineage, got.Serial, lineage)
	}

	refusals := []struct {
		name string
		in   func() *state.State
		kind state.PushKind
	}{
		{"another lineage", func() *state.State { return Sample(uuid.NewString()) }, state.PushOtherLineage},
		{"an older serial", func() *state.State { st := Sample(lineage); st.Serial = 6; return st }, state.PushOlderSerial},
		{"the same serial with other pools", func() *state.State {
			st := Sample(lineage)
			st.Serial = 7
			st.Pools["pool.chat"].Replicas[0].PID = 5
			return st
		}, state.PushSameSerial},
	}
	for _, r := range refusals {
		err := s.Push(ctx, r.in(), false)
		var pe *state.PushError
		if !errors.As(err, &pe) || pe.Kind != r.kind {
			t.Errorf("push of %s: error = %v, want a *state.PushError of kind %d", r.name, err, r.kind)
		}
		if got := mustRead(t, b.Open(t)); got.Serial != 7 || got.Lineage != lineage {
			t.Errorf("a refused push of %s changed the state to %s at %d", r.name, got.Lineage, got.Serial)
		}
	}

	same := Sample(lineage)
	same.Serial = 7
	if err := s.Push(ctx, same, false); err != nil || same.Serial != 7 {
		t.Errorf("push of the stored state itself: serial %d, %v; want nothing written", same.Serial, err)
	}
	if _, err := s.ReadBackup(ctx); !errors.Is(err, state.ErrNoBackup) {
		t.Errorf("a push that changed nothing made a backup (%v)", err)
	}

	newer := Sample(lineage)
	newer.Serial = 12
	newer.Pools["pool.chat"].Replicas[0].PID = 12
	if err := s.Push(ctx, newer, false); err != nil {
		t.Fatalf("push of a newer serial: %v", err)
	}
	if got := mustRead(t, b.Open(t)); got.Serial != 12 || pid(got) != 12 {
		t.Errorf("after a push of serial 12: serial %d, pid %d", got.Serial, pid(got))
	}

	forced := Sample(uuid.NewString())
	forced.Serial = 3
	if err := s.Push(ctx, forced, true); err != nil {
		t.Fatalf("forced push of another lineage: %v", err)
	}
	got := mustRead(t, b.Open(t))
	if got.Lineage != forced.Lineage || got.Serial != 13 || forced.Serial != 13 {
		t.Errorf("after a forced push: %s at %d (caller's %d), want %s at 13: the serial never goes back",
			got.Lineage, got.Serial, forced.Serial, forced.Lineage)
	}
	if bk, err := s.ReadBackup(ctx); err != nil || bk.Lineage != lineage || bk.Serial != 12 {
		t.Errorf("backup after a forced push = %+v, %v; want the replaced state", bk, err)
	}
}

func lockExclusive(t *testing.T, b Backend) {
	ctx := t.Context()
	a, c := b.Open(t), b.Open(t)
	id, err := a.Lock(ctx, state.LockInfo{Operation: "apply", Who: "ann@build1"})
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	for name, s := range map[string]state.Store{"another store": c, "the same store": a} {
		_, err := s.Lock(ctx, state.LockInfo{Operation: "plan"})
		var le *state.LockError
		if !errors.As(err, &le) {
			t.Fatalf("Lock by %s while held: %v, want a *state.LockError", name, err)
		}
		if le.Info.ID != id || le.Info.Operation != "apply" || le.Info.Who != "ann@build1" || le.Info.PID != os.Getpid() || le.Info.Created.IsZero() {
			t.Errorf("Lock by %s: holder = %+v, want the holder's id %s, operation, who, pid and time", name, le.Info, id)
		}
	}
	if err := a.Unlock(ctx, id); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	id2, err := c.Lock(ctx, state.LockInfo{Operation: "plan"})
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	if id2 == id {
		t.Error("two locks had the same id")
	}
	if err := c.Unlock(ctx, id2); err != nil {
		t.Fatal(err)
	}
}

func unlockChecks(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t)
	if err := s.Unlock(ctx, "nope"); err == nil {
		t.Error("Unlock without holding the lock succeeded")
	}
	id, err := s.Lock(ctx, state.LockInfo{Operation: "apply"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "not-"+id); err == nil || !strings.Contains(err.Error(), id) {
		t.Errorf("Unlock with another id: %v, want an error naming the lock held (%s)", err, id)
	}
	if err := s.Unlock(ctx, id); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

func forceUnlockRefusals(t *testing.T, b Backend) {
	ctx := t.Context()
	if err := b.Open(t).ForceUnlock(ctx, "some-id"); err == nil || !strings.Contains(err.Error(), "not locked") {
		t.Errorf("ForceUnlock with nothing locked: %v, want it to say the state is not locked", err)
	}
	s := b.Open(t)
	id, err := s.Lock(ctx, state.LockInfo{Operation: "apply"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(t).ForceUnlock(ctx, "wrong-id"); err == nil {
		t.Error("ForceUnlock with another id succeeded")
	}
	if _, lerr := b.Open(t).Lock(ctx, state.LockInfo{}); lerr == nil {
		t.Error("a refused ForceUnlock released the lock")
	}
	if err := s.Unlock(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func lockWaits(t *testing.T, b Backend) {
	ctx := t.Context()
	holder, waiter := b.Open(t), b.Open(t)
	id, err := holder.Lock(ctx, state.LockInfo{Operation: "apply"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		time.Sleep(100 * time.Millisecond) // the holder works for a while
		if err := holder.Unlock(context.WithoutCancel(ctx), id); err != nil {
			t.Error(err)
		}
	})
	got, err := state.LockWithTimeout(ctx, waiter, state.LockInfo{Operation: "plan"}, 20*time.Second)
	if err != nil {
		t.Fatalf("LockWithTimeout: %v", err)
	}
	if err := waiter.Unlock(ctx, got); err != nil {
		t.Fatal(err)
	}
}

func racingWriters(t *testing.T, b Backend) {
	seed(t, b)
	const n = 4
	stores := make([]state.Store, n)
	reads := make([]*state.State, n)
	for i := range stores {
		stores[i] = b.Open(t)
		reads[i] = mustRead(t, stores[i])
		reads[i].Pools["pool.chat"].Replicas[0].PID = 100 + i
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { errs[i] = stores[i].Write(t.Context(), reads[i]) })
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		var se *state.StaleError
		switch {
		case err == nil && won >= 0:
			t.Errorf("writers %d and %d both wrote serial 2", won, i)
		case err == nil:
			won = i
		case !errors.As(err, &se):
			t.Errorf("writer %d: %v, want success or a *state.StaleError", i, err)
		}
	}
	got := mustRead(t, b.Open(t))
	if won < 0 || got.Serial != 2 || pid(got) != 100+won {
		t.Errorf("stored serial %d, pid %d; want the one winner's state (%d) at serial 2", got.Serial, pid(got), won)
	}
}
