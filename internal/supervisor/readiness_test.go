package supervisor

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/clock"
)

func TestEngineLogSignalsOutputOtherThanProbeLines(t *testing.T) {
	tests := []struct {
		name     string
		watching bool
		writes   []string
		want     bool
	}{
		{"a loading line", true, []string{"main: model loaded\n"}, true},
		{"an unfinished line", true, []string{"llama_model_load: ..."}, true},
		{"the supervisor's health probe", true, []string{"srv  log_server_r: request: GET /health 127.0.0.1 503\n"}, false},
		{"every probe line at once", true, []string{
			"srv  log_server_r: request: GET /health 127.0.0.1 503\nsrv  log_server_r: request: GET /props 127.0.0.1 200\n" +
				"srv  log_server_r: request: GET /slots 127.0.0.1 200\nsrv  log_server_r: request: GET /metrics 127.0.0.1 200\n",
		}, false},
		{"a probe line and a loading line", true, []string{"srv  log_server_r: request: GET /health 127.0.0.1 503\nmain: model loaded\n"}, true},
		{"the end of a probe line", true, []string{"srv  log_server_r: request: GET /health ", "127.0.0.1 503\n"}, false},
		{"a user's request", true, []string{"srv  log_server_r: request: POST /completion 127.0.0.1 200\n"}, true},
		{"output while not watching", false, []string{"main: model loaded\n"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := openEngineLog(afero.NewMemMapFs(), "/engine.log", 1<<20, 1, probeLogLines("/health", LegacyProtocol("/m.gguf"))...)
			if err != nil {
				t.Fatal(err)
			}
			activity := make(chan struct{}, 1)
			l.activity = activity
			l.watchOutput(tc.watching)
			got := false
			for _, w := range tc.writes {
				if _, err := l.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
				select {
				case <-activity:
					got = true
				default:
				}
			}
			if got != tc.want {
				t.Fatalf("activity after %q = %v, want %v", tc.writes, got, tc.want)
			}
		})
	}
}

func TestEngineLogStartMarkerIsNoActivity(t *testing.T) {
	l, err := openEngineLog(afero.NewMemMapFs(), "/engine.log", 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	activity := make(chan struct{}, 1)
	l.activity = activity
	l.watchOutput(true)
	l.MarkStart("--- llorch: starting engine ---")
	select {
	case <-activity:
		t.Fatal("the supervisor's own start marker counted as engine output")
	default:
	}
}

func TestHealthPathUpdateMakesTheNewProbeLinesQuiet(t *testing.T) {
	l, err := openEngineLog(afero.NewMemMapFs(), "/engine.log", 1<<20, 1, probeLogLines("/health", LegacyProtocol("/m.gguf"))...)
	if err != nil {
		t.Fatal(err)
	}
	activity := make(chan struct{}, 1)
	l.activity = activity
	l.watchOutput(true)
	l.setQuiet(probeLogLines("/ready", LegacyProtocol("/m.gguf")))
	_, _ = l.Write([]byte("srv  log_server_r: request: GET /ready 127.0.0.1 503\n"))
	select {
	case <-activity:
		t.Fatal("a probe line of the new health path counted as engine output")
	default:
	}
}

func TestStartingEngineOutputTriggersTheReadinessProbe(t *testing.T) {
	// With an hour between readiness polls, only the engine's own log
	// lines ("main: model loaded") can get it detected as ready.
	spec := fakeSpec(t, map[string]string{"FAKE_LOAD_DELAY": "50ms"})
	spec.Health.Interval = time.Hour
	r := startRun(t, spec)
	st, _ := r.waitFor(t, "ready", isState(Ready))
	if got := st.ReadyAt.Sub(st.StartedAt); got < 50*time.Millisecond {
		t.Fatalf("ready %v after start, before the 50ms load finished", got)
	}
}

// logSpawner is a fakeSpawner that hands the test the engine's log.
type logSpawner struct {
	fakeSpawner
	mu  sync.Mutex
	log io.Writer
}

func (s *logSpawner) Start(ctx context.Context, c Cmd) (Process, error) {
	s.mu.Lock()
	s.log = c.Log
	s.mu.Unlock()
	return s.fakeSpawner.Start(ctx, c)
}

func (s *logSpawner) write(t *testing.T, line string) {
	t.Helper()
	s.mu.Lock()
	w := s.log
	s.mu.Unlock()
	if _, err := io.WriteString(w, line); err != nil {
		t.Fatal(err)
	}
}

// gateProber holds every /health probe until the test answers it, and
// records how many were in flight at once.
type gateProber struct {
	started chan int // the number of each probe as it starts
	answers chan int // the code for the probe in flight

	mu               sync.Mutex
	calls, in, maxIn int
}

func newGateProber() *gateProber {
	return &gateProber{started: make(chan int, 16), answers: make(chan int)}
}

func (p *gateProber) Health(ctx context.Context, _ Target) (int, string, error) {
	p.mu.Lock()
	p.calls++
	p.in++
	p.maxIn = max(p.maxIn, p.in)
	n := p.calls
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.in--
		p.mu.Unlock()
	}()
	p.started <- n
	select {
	case code := <-p.answers:
		return code, "", nil
	case <-ctx.Done():
		return 0, "", ctx.Err()
	}
}
func (p *gateProber) Confirm(context.Context, Target) error         { return nil }
func (p *gateProber) InFlight(context.Context, Target) (int, error) { return 0, nil }
func (p *gateProber) Complete(context.Context, Target, string, int) (string, error) {
	return " fake", nil
}

func (p *gateProber) counts() (calls, maxIn int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, p.maxIn
}

func (p *gateProber) waitStarted(t *testing.T, want int) {
	t.Helper()
	select {
	case n := <-p.started:
		if n != want {
			t.Fatalf("probe %d started, want probe %d", n, want)
		}
	case <-waitCtx(t).Done():
		t.Fatalf("probe %d never started", want)
	}
}

func TestEngineOutputProbesAreCoalescedOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(fakeEpoch)
	sp := &logSpawner{}
	pr := newGateProber()
	spec := fakeRunSpec(t, HealthPolicy{Interval: time.Hour, StartTimeout: time.Hour, LiveInterval: time.Hour}, RestartPolicy{Policy: "never"})
	r := startRunWith(t, spec, Deps{Spawner: sp, Prober: pr, Clock: clk, Fs: afero.NewMemMapFs()})
	ctx := waitCtx(t)

	// The probe at spawn is out when the engine starts talking.
	pr.waitStarted(t, 1)
	for _, line := range []string{"main: HTTP server is listening\n", "srv    load_model: loading model\n", "main: model loaded\n"} {
		sp.write(t, line)
	}
	pr.answers <- 503
	// Its answer arms the interval tick and, for the output that came
	// meanwhile, a single probe readinessKickGap after the last one.
	if err := clk.WaitTimers(ctx, 3); err != nil { // start deadline, interval tick, kick
		t.Fatal(err)
	}
	if calls, _ := pr.counts(); calls != 1 {
		t.Fatalf("%d probes before the kick gap passed, want 1", calls)
	}
	clk.Advance(readinessKickGap)
	pr.waitStarted(t, 2)
	pr.answers <- 200
	st, _ := r.waitFor(t, "ready", isState(Ready))
	if want := fakeEpoch.Add(readinessKickGap); !st.ReadyAt.Equal(want) {
		t.Fatalf("ready at %v, want %v: one kick gap after the spawn, not at the hourly tick", st.ReadyAt, want)
	}
	if calls, maxIn := pr.counts(); calls != 2 || maxIn != 1 {
		t.Fatalf("%d probes, at most %d at once; want 2 probes, never more than 1 in flight", calls, maxIn)
	}
}
