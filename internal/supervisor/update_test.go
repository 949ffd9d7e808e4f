package supervisor

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/state/handoff"
)

// switchProber answers /health with the code the test stores (500 for
// the engine whose pid is in sick), and reports requests in flight while
// busy is set.
type switchProber struct {
	code atomic.Int32
	sick atomic.Int64
	busy atomic.Bool
}

func newSwitchProber(code int) *switchProber {
	p := &switchProber{}
	p.code.Store(int32(code))
	return p
}

func (p *switchProber) Health(_ context.Context, t Target) (int, string, error) {
	c := int(p.code.Load())
	if int64(t.PID) == p.sick.Load() {
		c = 500
	}
	return c, strconv.Itoa(c), nil
}
func (p *switchProber) Confirm(context.Context, Target) error { return nil }
func (p *switchProber) Complete(context.Context, Target, string, int) (string, error) {
	return " fake", nil
}

func (p *switchProber) InFlight(context.Context, Target) (int, error) {
	if p.busy.Load() {
		return 1, nil
	}
	return 0, nil
}
func (p *switchProber) setBusy(busy bool) { p.busy.Store(busy) }

// fakeRunSpec is a spec for a run on a fake spawner and prober.
func fakeRunSpec(t *testing.T, health HealthPolicy, policy RestartPolicy) Spec {
	return Spec{
		Addr: "pool.fake/r0", PoolID: "fake", ReplicaID: "r0", Binary: "engine", Host: "127.0.0.1", Port: freePort(t),
		Health: health, Restart: policy, RunDir: runDir(t),
	}
}

// syncBuffer is a log destination safe for the supervisor's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// slogTo returns a supervisor logger writing text lines to w.
func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Settings)
		want   string
	}{
		{name: "defaults", change: func(*Settings) {}},
		{name: "negative interval", change: func(s *Settings) { s.Health.Interval = -time.Second }, want: "health interval is -1s; it must be positive"},
		{name: "negative live interval", change: func(s *Settings) { s.Health.LiveInterval = -time.Second }, want: "health live_interval is -1s; it must be positive"},
		{name: "relative health path", change: func(s *Settings) { s.Health.Path = "health" }, want: `health path "health" must start with /`},
		{name: "negative failures", change: func(s *Settings) { s.Health.Failures = -1 }, want: "health failures -1 must be positive"},
		{name: "negative drain deadline", change: func(s *Settings) { s.Drain.Deadline = -time.Second }, want: "drain deadline is -1s; it must be positive"},
		{name: "unknown restart policy", change: func(s *Settings) { s.Restart.Policy = "sometimes" }, want: `restart policy "sometimes" is not one of "always", "on-failure" or "never"`},
		{name: "every problem at once", change: func(s *Settings) {
			s.Health.Interval, s.Restart.Jitter = -time.Second, 2
		}, want: "health interval is -1s; it must be positive\nrestart jitter 2 must be between 0 and 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Settings{}.WithDefaults()
			tc.change(&s)
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate() = %v\nwant %q", err, tc.want)
			}
		})
	}
}

func TestSettingsWithDefaultsMatchesTheSpec(t *testing.T) {
	got := Settings{Health: HealthPolicy{Interval: time.Second}, Labels: map[string]string{"a": "b"}}.WithDefaults()
	spec := Spec{Health: HealthPolicy{Interval: time.Second}}.WithDefaults()
	if got.Health != spec.Health || got.Restart != spec.Restart || got.Drain != spec.Drain || got.Labels["a"] != "b" {
		t.Fatalf("Settings.WithDefaults() = %+v\nwant the spec's defaults %+v %+v %+v and the labels", got, spec.Health, spec.Restart, spec.Drain)
	}
}

func TestUpdateAppliesSettingsWithoutRestartingTheEngine(t *testing.T) {
	spec := fakeSpec(t, nil)
	spec.Handoff = handoff.File{Engine: "llamacpp", Labels: map[string]string{"team": "search"}}
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))

	set := Settings{
		Health:  HealthPolicy{Path: "/health", Interval: 20 * time.Millisecond, StartTimeout: 5 * time.Second, LiveInterval: 30 * time.Millisecond, Failures: 4},
		Restart: RestartPolicy{Policy: "on-failure", InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 3, MaxFailures: 7, Cooldown: 2 * time.Minute},
		Drain:   DrainPolicy{Deadline: 3 * time.Second},
		Labels:  map[string]string{"team": "ranking", "tier": "gold"},
	}
	if err := r.client.Update(waitCtx(t), set); err != nil {
		t.Fatalf("Update: %v", err)
	}

	st, err := r.client.Status(waitCtx(t))
	if err != nil || st.State != Ready || st.PID != ready.PID || st.Restarts != 0 || !Alive(ready.PID) {
		t.Fatalf("after Update: %+v, %v, engine alive=%v; want still ready with the same engine %d", st, err, Alive(ready.PID), ready.PID)
	}
	h := readHandoffFile(t, spec.HandoffPath)
	if !maps.Equal(h.Labels, set.Labels) || h.PID != ready.PID || !h.ReadyAt.Equal(ready.ReadyAt) || h.Draining || h.Engine != "llamacpp" {
		t.Fatalf("handoff after Update = %+v\nwant labels %v, pid %d, ready_at %v, the template's engine", h, set.Labels, ready.PID, ready.ReadyAt)
	}

	onDisk, err := ReadSpec(afero.NewOsFs(), spec.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.Health != set.Health || onDisk.Restart != set.Restart || onDisk.Drain != set.Drain || !maps.Equal(onDisk.Handoff.Labels, set.Labels) {
		t.Fatalf("spec.json after Update holds health %+v restart %+v drain %+v labels %v\nwant %+v", onDisk.Health, onDisk.Restart, onDisk.Drain, onDisk.Handoff.Labels, set)
	}
	if onDisk.Binary != spec.Binary || !reflect.DeepEqual(onDisk.Args, spec.Args) || onDisk.Port != spec.Port || onDisk.HandoffPath != spec.HandoffPath {
		t.Fatalf("spec.json after Update lost the rest of the spec: %+v", onDisk)
	}
	if fi, err := os.Stat(filepath.Join(spec.RunDir, SpecFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spec.json after Update: %v, %v; want mode 0600", fi.Mode().Perm(), err)
	}
}

func TestUpdateRejectsInvalidSettingsAndChangesNothing(t *testing.T) {
	spec := fakeSpec(t, nil)
	c, st := launch(t, spec)
	var client Client = c
	before, err := os.ReadFile(filepath.Join(spec.RunDir, SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	prefix := "updating settings of " + spec.RunDir + ": invalid settings: "
	tests := []struct {
		name string
		set  Settings
		want string
	}{
		{"negative interval", Settings{Health: HealthPolicy{Interval: -time.Second}}, "health interval is -1s; it must be positive"},
		{"relative health path", Settings{Health: HealthPolicy{Path: "health"}}, `health path "health" must start with /`},
		{"unknown restart policy", Settings{Restart: RestartPolicy{Policy: "sometimes"}}, `restart policy "sometimes" is not one of "always", "on-failure" or "never"`},
		{"negative drain deadline", Settings{Drain: DrainPolicy{Deadline: -time.Second}}, "drain deadline is -1s; it must be positive"},
		{"two problems", Settings{Health: HealthPolicy{Failures: -2}, Restart: RestartPolicy{MaxFailures: -1}},
			"health failures -2 must be positive\nrestart max_failures -1 must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := client.Update(waitCtx(t), tc.set)
			if err == nil || err.Error() != prefix+tc.want {
				t.Fatalf("Update = %v\nwant %q", err, prefix+tc.want)
			}
		})
	}
	after, err := os.ReadFile(filepath.Join(spec.RunDir, SpecFile))
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("spec.json changed after rejected updates (%v):\n%s\nwas:\n%s", err, after, before)
	}
	now, err := c.Status(waitCtx(t))
	if err != nil || now.State != Ready || now.PID != st.PID {
		t.Fatalf("after rejected updates: %+v, %v; want still ready with engine %d", now, err, st.PID)
	}
}

func TestUpdateLeavesAnotherReplicasHandoffFileAlone(t *testing.T) {
	old := fakeSpec(t, nil)
	newer := fakeSpec(t, nil)
	newer.HandoffPath = old.HandoffPath
	newer.Handoff.Labels = map[string]string{"gen": "new"}
	a := startRun(t, old)
	a.waitFor(t, "old ready", isState(Ready))
	b := startRun(t, newer)
	bReady, _ := b.waitFor(t, "new ready", isState(Ready))
	if err := a.client.Update(waitCtx(t), Settings{Labels: map[string]string{"gen": "old-relabelled"}}); err != nil {
		t.Fatalf("Update of the old replica: %v", err)
	}
	if h := readHandoffFile(t, old.HandoffPath); h.PID != bReady.PID || !maps.Equal(h.Labels, newer.Handoff.Labels) {
		t.Fatalf("handoff %+v after the old replica's update, want the new replica's (pid %d, labels %v)", h, bReady.PID, newer.Handoff.Labels)
	}
}

func TestUpdatedProbeSettingsApplyFromTheNextProbeOnAFakeClock(t *testing.T) {
	fs := afero.NewMemMapFs()
	clk := clock.NewFake(fakeEpoch)
	pr := newSwitchProber(200)
	spec := fakeRunSpec(t, HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour, Failures: 3}, RestartPolicy{Policy: "always"})
	spec.HandoffPath = "/handoff/fake-r0.json"
	spec.Handoff.Labels = map[string]string{"team": "a"}
	r := startRunWith(t, spec, Deps{Spawner: &fakeSpawner{}, Prober: pr, Clock: clk, Fs: fs})
	ready, _ := r.waitFor(t, "ready", isState(Ready))

	// Liveness every 2s instead of every hour, and one failure is enough.
	set := Settings{Health: HealthPolicy{StartTimeout: time.Hour, LiveInterval: 2 * time.Second, Failures: 1}, Labels: map[string]string{"team": "b"}}
	if err := r.client.Update(waitCtx(t), set); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if h, err := handoff.Read(fs, spec.HandoffPath); err != nil || h.Labels["team"] != "b" || h.PID != ready.PID {
		t.Fatalf("handoff right after Update = %+v, %v; want team=b for pid %d", h, err, ready.PID)
	}
	pr.sick.Store(int64(ready.PID))
	clk.Advance(2 * time.Second)
	st, _ := r.waitFor(t, "unhealthy", isState(Unhealthy))
	if want := "engine unhealthy: 1 liveness probes failed in a row (last: 500)"; st.LastError != want || !st.UpdatedAt.Equal(fakeEpoch.Add(2*time.Second)) {
		t.Fatalf("unhealthy at %v with %q\nwant at %v with %q", st.UpdatedAt, st.LastError, fakeEpoch.Add(2*time.Second), want)
	}
	again, _ := r.waitFor(t, "ready after the restart", func(st Status) bool { return st.State == Ready && st.Restarts == 1 })
	// The restarted engine's handoff file comes from the updated template.
	if h, err := handoff.Read(fs, spec.HandoffPath); err != nil || h.Labels["team"] != "b" || h.PID != again.PID {
		t.Fatalf("handoff after the restart = %+v, %v; want team=b for pid %d", h, err, again.PID)
	}
	onDisk, err := ReadSpec(fs, spec.RunDir)
	if err != nil || onDisk.Health.LiveInterval != 2*time.Second || onDisk.Health.Failures != 1 || onDisk.Handoff.Labels["team"] != "b" {
		t.Fatalf("spec.json = %+v, %v; want the updated settings", onDisk, err)
	}
}

func TestUpdateKeepsTheStartUnderWayOnItsTimeoutOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(fakeEpoch)
	spec := fakeRunSpec(t, HealthPolicy{Interval: time.Hour, StartTimeout: 10 * time.Second, LiveInterval: time.Hour}, RestartPolicy{Policy: "never"})
	r := startRunWith(t, spec, Deps{Spawner: &fakeSpawner{}, Prober: newSwitchProber(503), Clock: clk, Fs: afero.NewMemMapFs()})
	r.waitFor(t, "starting", isState(Starting))
	ctx := waitCtx(t)
	if err := clk.WaitTimers(ctx, 2); err != nil { // start deadline + next poll: the first probe answered
		t.Fatal(err)
	}
	set := Settings{Health: HealthPolicy{Interval: time.Hour, StartTimeout: time.Hour, LiveInterval: time.Hour}, Restart: RestartPolicy{Policy: "never"}}
	if err := r.client.Update(ctx, set); err != nil {
		t.Fatalf("Update: %v", err)
	}
	clk.Advance(10 * time.Second)
	st, _ := r.waitFor(t, "failed", isState(Failed))
	want := `not ready after 10s (last /health answer: 503); restart policy "never" does not restart the engine (the engine wrote nothing to its log)`
	if st.LastError != want || !st.UpdatedAt.Equal(fakeEpoch.Add(10*time.Second)) {
		t.Fatalf("failed at %v with %q\nwant at %v with %q", st.UpdatedAt, st.LastError, fakeEpoch.Add(10*time.Second), want)
	}
}

func TestUpdatedDrainDeadlineAppliesToTheNextDrainOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(fakeEpoch)
	pr := newSwitchProber(200)
	pr.setBusy(true) // work never ends: only the deadline stops the engine
	spec := fakeRunSpec(t, HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour}, RestartPolicy{Policy: "always"})
	spec.Drain.Deadline = time.Hour
	r := startRunWith(t, spec, Deps{Spawner: &fakeSpawner{}, Prober: pr, Clock: clk, Fs: afero.NewMemMapFs()})
	r.waitFor(t, "ready", isState(Ready))
	ctx := waitCtx(t)
	set := Settings{Health: spec.Health, Drain: DrainPolicy{Deadline: 3 * time.Second}}
	if err := r.client.Update(ctx, set); err != nil {
		t.Fatalf("Update: %v", err)
	}
	drained := make(chan error, 1)
	go func() { drained <- r.client.Drain(ctx) }()
	r.waitFor(t, "draining", isState(Draining))
	if err := clk.WaitTimers(ctx, 2); err != nil { // drain deadline + next busy poll
		t.Fatal(err)
	}
	// Status shows the drain's progress: its end and the work in flight.
	st, _ := r.waitFor(t, "one request in flight", func(st Status) bool { return st.InFlight == 1 })
	if !st.DrainEndsAt.Equal(fakeEpoch.Add(3*time.Second)) || st.DrainCutOff {
		t.Fatalf("draining: ends at %v (want %v), cut off %v", st.DrainEndsAt, fakeEpoch.Add(3*time.Second), st.DrainCutOff)
	}
	clk.Advance(3 * time.Second)
	st, _ = r.waitFor(t, "stopped", isState(Stopped))
	if !st.UpdatedAt.Equal(fakeEpoch.Add(3 * time.Second)) {
		t.Fatalf("stopped at %v, want at the updated 3s deadline %v", st.UpdatedAt, fakeEpoch.Add(3*time.Second))
	}
	if !st.DrainCutOff || st.InFlight != 1 {
		t.Fatalf("stopped by the deadline with work in flight: cut off %v, in flight %d; want true, 1", st.DrainCutOff, st.InFlight)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

func TestDrainWithinStopsABusyEngineAtTheOverride(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_INFLIGHT": "1", "FAKE_REQUEST_DELAY": "1h"})
	spec.Drain.Deadline = time.Hour // a drain that waited for it would time out the test
	spec.StopGrace = 200 * time.Millisecond
	var log syncBuffer
	r := startRunWith(t, spec, Deps{Logger: slogTo(&log)})
	ready, _ := r.waitFor(t, "ready", isState(Ready))

	end, err := r.client.DrainWithin(waitCtx(t), 200*time.Millisecond)
	if err != nil {
		t.Fatalf("DrainWithin: %v", err)
	}
	if !end.DrainCutOff || end.InFlight != 1 {
		t.Fatalf("DrainWithin ended with cut off %v, in flight %d; want the deadline to have cut 1 request off", end.DrainCutOff, end.InFlight)
	}
	if Alive(ready.PID) {
		t.Fatalf("engine %d alive after DrainWithin returned", ready.PID)
	}
	if got := log.String(); !strings.Contains(got, `msg="drain deadline passed; stopping the engine" addr=pool.chat/r0 deadline=200ms`) {
		t.Fatalf("supervisor log does not show the drain ending at the 200ms override:\n%s", got)
	}
	if st, err := r.client.Status(waitCtx(t)); err != nil || st.State != Stopped {
		t.Fatalf("after DrainWithin: %+v, %v; want stopped", st, err)
	}
}

func TestALaterDrainWithAnEarlierDeadlineShortensTheDrainUnderWay(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_INFLIGHT": "1", "FAKE_REQUEST_DELAY": "1h"})
	spec.StopGrace = 200 * time.Millisecond
	var log syncBuffer
	r := startRunWith(t, spec, Deps{Logger: slogTo(&log)})
	ready, _ := r.waitFor(t, "ready", isState(Ready))

	first := make(chan error, 1)
	go func() {
		_, err := r.client.DrainWithin(waitCtx(t), time.Hour)
		first <- err
	}()
	r.waitFor(t, "draining", isState(Draining))
	if _, err := r.client.DrainWithin(waitCtx(t), 200*time.Millisecond); err != nil {
		t.Fatalf("second DrainWithin: %v", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first DrainWithin: %v", err)
	}
	if Alive(ready.PID) {
		t.Fatalf("engine %d alive after both drains returned", ready.PID)
	}
	if got := log.String(); !strings.Contains(got, "deadline=200ms") {
		t.Fatalf("supervisor log does not show the drain ending at the 200ms deadline:\n%s", got)
	}
}

func TestDrainWithinRefusesANegativeDeadline(t *testing.T) {
	c, err := newSocketClient(runDir(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.DrainWithin(waitCtx(t), -time.Second)
	want := "draining " + c.runDir + ": deadline -1s is negative; give a positive duration, or 0 for the spec's"
	if err == nil || err.Error() != want {
		t.Fatalf("DrainWithin(-1s) = %v\nwant %q", err, want)
	}
}
