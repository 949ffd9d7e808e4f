package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/internal/supervisor/restart"
)

// drainPollInterval is how often a draining supervisor asks the engine for
// in-flight work: llama-server offers no event for "idle".
const drainPollInterval = 100 * time.Millisecond

// readinessKickGap is the least time between two readiness probes that
// engine output triggers, so a chatty engine cannot turn them into a busy
// loop.
const readinessKickGap = 2 * time.Millisecond

// Deps are Run's seams. Zero fields get the real implementations.
type Deps struct {
	Spawner Spawner     // ExecSpawner
	Prober  Prober      // NewHTTPProber()
	Clock   clock.Clock // clock.Real
	Fs      afero.Fs    // the OS filesystem
	Rand    *rand.Rand  // jitter; a randomly seeded source
	// Notify, when set, receives one JSON line ({"status":{…}}) per state
	// change until the first start is decided (ready, or not), and is then
	// closed if it is an io.Closer. Launch passes a pipe here so it can wait
	// on the health gate without polling.
	Notify io.Writer
	// Listener serves the control socket. nil: listen on the run
	// directory's socket.
	Listener net.Listener
	Logger   *slog.Logger // supervisor's own log; nil discards
	// Environ is the engine's base environment, Spec.Env goes on top; nil
	// means EngineEnviron of the supervisor's own.
	Environ []string

	// watch, when set, is registered as a status watcher before the loop
	// starts, so tests in this package see every state from the first.
	watch chan Status
}

func (d Deps) withDefaults() Deps {
	if d.Spawner == nil {
		d.Spawner = ExecSpawner{}
	}
	if d.Prober == nil {
		d.Prober = NewHTTPProber()
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Fs == nil {
		d.Fs = afero.NewOsFs()
	}
	if d.Rand == nil {
		d.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Environ == nil {
		d.Environ = EngineEnviron(os.Environ())
	}
	return d
}

// Run is the body of `llorch supervise`: it spawns the engine described by
// spec, gates it on health, keeps it alive under spec's restart policy and
// serves the control socket. A single goroutine (loop) owns all state:
// spawns, probe results, exits, timers and socket requests reach it as
// messages, and readers get an atomic snapshot. Run returns when ctx is
// cancelled or a stop request completes, and never leaves its engine
// running.
//
//	       spawn            200 + ours
//	──▶ starting ─────────────────────▶ ready ──drain──▶ draining ──▶ stopped
//	      │  ▲  exit / start_timeout      │ exit, or `failures` bad probes
//	      │  │                            ▼ (unhealthy: stop sequence)
//	      │  └── restarting ◀── backoff ◀─┴── tracker ──▶ failed (breaker open,
//	      │                                               half-open try after cooldown)
//	      └─ first start onto a port another process listens on,
//	         another server answers, no binary ──▶ failed (no retry)
//
// An engine that cannot bind its port (only closing connections hold it,
// or a process took it since) is a failed start the restart policy
// retries, even at the launcher's health gate: see ending.transient.
func Run(ctx context.Context, spec Spec, deps Deps) error {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return fmt.Errorf("invalid supervisor spec for %s: %w", spec.Addr, err)
	}
	deps = deps.withDefaults()
	if err := deps.Fs.MkdirAll(spec.RunDir, 0o700); err != nil {
		return fmt.Errorf("creating run directory: %w", err)
	}
	if pid, ok := runningSupervisor(deps.Fs, spec.RunDir); ok {
		return fmt.Errorf("a supervisor is already running in %s (pid %d); stop it before starting another", spec.RunDir, pid)
	}
	elog, err := openEngineLog(deps.Fs, filepath.Join(spec.RunDir, EngineLogFile), spec.LogMaxBytes, spec.LogKeep, probeLogLines(spec.Health.Path, spec.protocol())...)
	if err != nil {
		return err
	}
	defer elog.Close()

	ln := deps.Listener
	if ln == nil {
		var cleanup func()
		ln, cleanup, err = listenControl(spec.RunDir)
		if err != nil {
			return err
		}
		defer cleanup()
	}
	pidPath := filepath.Join(spec.RunDir, SupervisorPIDFile)
	if err := atomicfile.Replace(deps.Fs, pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing supervisor pid: %w", err)
	}
	defer func() { _ = deps.Fs.Remove(pidPath) }()

	s := newSupervisor(spec, deps, elog)
	srv := newServer(ln, s)
	go srv.serve()
	defer srv.shutdown()

	s.loop(ctx)
	return nil
}

// runningSupervisor reports a live supervisor recorded in runDir other than
// this process.
func runningSupervisor(fs afero.Fs, runDir string) (int, bool) {
	b, err := afero.ReadFile(fs, filepath.Join(runDir, SupervisorPIDFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid == os.Getpid() {
		return 0, false
	}
	return pid, Alive(pid)
}

// probeKind is what a probe asks.
type probeKind int

const (
	probeReadiness probeKind = iota
	probeLiveness
	probeBusy
)

type probeResult struct {
	seq    int // engine generation the probe was about
	kind   probeKind
	code   int
	detail string // "503 Loading model", or the error
	err    error
	// confirm is Confirm's answer after a 200 readiness probe.
	confirm  error
	inFlight int
	// smoked is set when the readiness probe also ran the smoke
	// completion: smoke is its text, smokeErr why there is none.
	smoked   bool
	smoke    string
	smokeErr error
}

// request is a control request handed to the loop.
type request struct {
	op       string
	grace    time.Duration
	deadline time.Duration // op "drain"; 0 = the spec's
	settings Settings      // op "update"
	reply    chan Status   // buffered 1: the loop never blocks on a reply
	done     chan error    // op "update", buffered 1
	watch    chan Status   // op "watch"/"unwatch"
}

// supervisor is Run's state. Every field below reqs is owned by the loop
// goroutine; others read snap.
type supervisor struct {
	spec    Spec
	deps    Deps
	log     *slog.Logger
	elog    *engineLog
	tracker *restart.Tracker
	target  Target

	snap     atomic.Pointer[Status]
	reqs     chan request
	probes   chan probeResult
	output   chan struct{} // engine output while starting (engineLog.activity)
	loopDone chan struct{} // closed when the loop has replied to everyone and returned
	life     context.Context
	endLife  context.CancelFunc

	// now is read once per event, so every time recorded while handling
	// it (updated_at, next_restart_at, ready_at) agrees.
	now      time.Time
	st       Status
	watchers map[chan Status]struct{}
	notify   io.Writer // nil once the first start is decided

	proc        Process
	procDone    <-chan ExitStatus
	seq         int // engine generation
	ownPIDs     map[int]bool
	everReady   bool
	probeCancel context.CancelFunc
	liveFails   int
	lastAnswer  string // last readiness answer, for "not ready after …"
	lastProbeAt time.Time
	kickPending bool // engine output arrived while a readiness probe was in flight
	// startTimeout and drainDeadline are the values the running start and
	// drain were given; a settings update applies to the next ones.
	startTimeout  time.Duration
	drainDeadline time.Duration
	drainEnds     time.Time

	stopping bool
	// oom counts the kernel's OOM kills for the engine's memory cgroup;
	// oomAtStart is its count when the engine started (oomKnown: it could
	// be read).
	oom        oomCounter
	oomAtStart uint64
	oomKnown   bool
	// adoptTried: the spec's Adopt engine was taken (or refused) once;
	// every later start spawns.
	adoptTried bool
	// repeatedStop: the stop signal went out a second time (the engine's
	// protocol says that forces its exit); SIGKILL comes next.
	repeatedStop bool
	afterStop    func(ExitStatus)
	draining     bool
	exiting      bool
	done         bool

	drainWaiters []chan Status
	stopWaiters  []chan Status

	probeT, startT, graceT, backoffT, drainT, kickT clock.Timer
}

func newSupervisor(spec Spec, deps Deps, elog *engineLog) *supervisor {
	s := &supervisor{
		spec:     spec,
		deps:     deps,
		log:      deps.Logger.With("addr", spec.Addr),
		elog:     elog,
		tracker:  restart.NewTracker(spec.Restart, deps.Rand),
		reqs:     make(chan request),
		probes:   make(chan probeResult, 1),
		output:   make(chan struct{}, 1),
		loopDone: make(chan struct{}),
		watchers: make(map[chan Status]struct{}),
		notify:   deps.Notify,
		ownPIDs:  make(map[int]bool),
		target:   spec.target(),
		st:       Status{Addr: spec.Addr, State: Starting, SupervisorPID: os.Getpid(), Port: spec.Port},
	}
	if deps.watch != nil {
		s.watchers[deps.watch] = struct{}{}
	}
	elog.activity = s.output // before any engine runs
	s.life, s.endLife = context.WithCancel(context.Background())
	st := s.st
	s.snap.Store(&st)
	return s
}

// Snapshot returns the latest status; safe from any goroutine.
func (s *supervisor) Snapshot() Status { return *s.snap.Load() }

func timerC(t clock.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

func stopTimer(t *clock.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// loop is the single writer of the supervisor's state.
func (s *supervisor) loop(ctx context.Context) {
	defer s.finish()
	ctxDone := ctx.Done()
	s.now = s.deps.Clock.Now()
	s.spawn()
	for !s.done {
		var ev any
		select {
		case <-ctxDone:
			ev = evSignal{}
		case req := <-s.reqs:
			ev = req
		case es := <-s.procDone:
			ev = es
		case r := <-s.probes:
			ev = r
		case <-timerC(s.probeT):
			ev = evProbeTimer{}
		case <-timerC(s.startT):
			ev = evStartTimer{}
		case <-timerC(s.graceT):
			ev = evGraceTimer{}
		case <-timerC(s.backoffT):
			ev = evBackoffTimer{}
		case <-timerC(s.drainT):
			ev = evDrainTimer{}
		case <-s.output:
			ev = evOutput{}
		case <-timerC(s.kickT):
			ev = evKickTimer{}
		}
		s.now = s.deps.Clock.Now()
		s.dispatch(ev, &ctxDone)
	}
}

// Loop events that carry no value.
type (
	evSignal       struct{}
	evProbeTimer   struct{}
	evStartTimer   struct{}
	evGraceTimer   struct{}
	evBackoffTimer struct{}
	evDrainTimer   struct{}
	evOutput       struct{}
	evKickTimer    struct{}
)

func (s *supervisor) dispatch(ev any, ctxDone *<-chan struct{}) {
	switch ev := ev.(type) {
	case evSignal:
		*ctxDone = nil
		s.log.Info("stop signal received; stopping the engine")
		s.shutdown(s.spec.StopGrace)
	case request:
		s.handle(ev)
	case ExitStatus:
		s.exited(ev)
	case probeResult:
		s.probed(ev)
	case evProbeTimer:
		s.probeT = nil
		s.startProbe()
	case evStartTimer:
		s.startT = nil
		s.startTimedOut()
	case evGraceTimer:
		s.graceT = nil
		s.graceExpired()
	case evBackoffTimer:
		s.backoffT = nil
		s.restartNow()
	case evDrainTimer:
		s.drainT = nil
		s.log.Info("drain deadline passed; stopping the engine", "deadline", s.drainDeadline, "in_flight", s.st.InFlight)
		s.st.DrainCutOff = true
		s.stopEngine(s.spec.StopGrace, func(ExitStatus) { s.finishStopped() })
	case evOutput:
		s.engineOutput()
	case evKickTimer:
		s.kickT = nil
		s.engineOutput()
	}
}

// finish answers every waiter, ends every watch and marks the loop done.
func (s *supervisor) finish() {
	for _, t := range []*clock.Timer{&s.probeT, &s.startT, &s.graceT, &s.backoffT, &s.drainT, &s.kickT} {
		stopTimer(t)
	}
	s.cancelProbe()
	s.endLife()
	final := s.st
	for _, w := range append(s.drainWaiters, s.stopWaiters...) {
		w <- final
	}
	s.drainWaiters, s.stopWaiters = nil, nil
	for w := range s.watchers {
		close(w)
	}
	s.watchers = nil
	s.gateDone()
	close(s.loopDone)
}

// publish records a state change: snapshot, status.json, watchers, notify.
func (s *supervisor) publish() {
	s.st.UpdatedAt = s.now
	if s.st.PID == 0 {
		s.st.EngineStartTicks = 0 // it identifies the pid, which is gone
	}
	st := s.st
	s.snap.Store(&st)
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = atomicfile.Replace(s.deps.Fs, filepath.Join(s.spec.RunDir, StatusFile), append(b, '\n'), 0o644)
	}
	if err != nil {
		// The engine matters more than the mirror: keep supervising.
		s.log.Error("writing status file", "err", err)
	}
	for w := range s.watchers {
		sendLatest(w, st)
	}
	if s.notify != nil {
		line, _ := json.Marshal(wireResponse{Status: &st})
		if _, err := s.notify.Write(append(line, '\n')); err != nil {
			s.log.Warn("launcher stopped listening for status", "err", err)
			s.notify = nil
		}
	}
	s.log.Info("state", "state", st.State, "pid", st.PID, "restarts", st.Restarts, "last_error", st.LastError)
}

// sendLatest queues st for a watcher without blocking; a watcher that falls
// a whole buffer behind loses its oldest status, never the newest.
func sendLatest(w chan Status, st Status) {
	for {
		select {
		case w <- st:
			return
		default:
		}
		select {
		case <-w:
		default:
		}
	}
}

// gateDone closes Notify: the first start has been decided.
func (s *supervisor) gateDone() {
	if s.notify == nil {
		return
	}
	if c, ok := s.notify.(io.Closer); ok {
		_ = c.Close()
	}
	s.notify = nil
}

// spawn checks the port, starts an engine and begins readiness polling.
// A port another process listens on fails the first start at once (the
// configuration names a taken port); at a restart the port was the
// engine's a moment ago, so it is a failed start the policy retries.
func (s *supervisor) spawn() {
	if a := s.spec.Adopt; a != nil && !s.adoptTried {
		s.adoptTried = true
		p, err := adoptProcess(s.life, *a)
		if err != nil {
			s.failForGood(err.Error())
			return
		}
		s.elog.MarkStart(fmt.Sprintf("--- llorch: imported pid %d for %s at %s; its output goes where it was started ---", a.PID, s.spec.Addr, s.now.Format(time.RFC3339)))
		s.began(p)
		return
	}
	if msg := portBusy(s.spec.Host, s.spec.Port); msg != "" {
		if s.seq == 0 {
			s.failForGood(msg)
			return
		}
		s.decide(ending{failed: true, cause: msg, transient: true, floor: spawnRetryFloor})
		return
	}
	now := s.now
	s.st.DrainEndsAt, s.st.InFlight, s.st.DrainCutOff = time.Time{}, 0, false
	s.elog.MarkStart(fmt.Sprintf("--- llorch: starting %s for %s at %s ---", s.spec.Binary, s.spec.Addr, now.Format(time.RFC3339)))
	p, err := s.deps.Spawner.Start(s.life, Cmd{Path: s.spec.Binary, Args: s.spec.Args, Env: s.environ(), Log: s.elog})
	if err != nil {
		s.failForGood(err.Error())
		return
	}
	s.began(p)
}

// began makes p the engine, starting, and starts its readiness gate.
func (s *supervisor) began(p Process) {
	now := s.now
	s.oomKnown = false // a new engine: count from now
	s.watchOOM(p.PID())
	s.seq++
	s.proc, s.procDone = p, p.Done()
	s.ownPIDs[p.PID()] = true
	s.liveFails, s.lastAnswer = 0, ""
	s.st.EngineStartTicks = 0
	if t, ok := p.(interface{ StartTicks() uint64 }); ok {
		s.st.EngineStartTicks = t.StartTicks()
	}
	if err := atomicfile.Replace(s.deps.Fs, filepath.Join(s.spec.RunDir, EnginePIDFile), []byte(strconv.Itoa(p.PID())+"\n"), 0o644); err != nil {
		s.log.Error("writing engine pid", "err", err)
	}
	s.st.State, s.st.PID = Starting, p.PID()
	s.st.StartedAt, s.st.ReadyAt, s.st.NextRestartAt = now, time.Time{}, time.Time{}
	s.publish()
	s.startTimeout = s.spec.Health.StartTimeout
	s.startT = s.deps.Clock.NewTimer(s.startTimeout)
	s.elog.watchOutput(true)
	s.startProbe()
}

// environ is the engine's environment: the base, then Spec.Env in key
// order (later entries win in os/exec).
func (s *supervisor) environ() []string {
	env := slices.Clone(s.deps.Environ)
	for _, k := range slices.Sorted(maps.Keys(s.spec.Env)) {
		env = append(env, k+"="+s.spec.Env[k])
	}
	return env
}

// failForGood marks the replica failed without consulting the restart
// policy: retrying cannot help (the configured port taken at the first
// start, another server answering, no binary), or the launcher's health
// gate failed. The next apply decides.
func (s *supervisor) failForGood(msg string) {
	s.st.State, s.st.PID, s.st.LastError, s.st.NextRestartAt = Failed, 0, msg, time.Time{}
	s.publish()
	s.gateDone()
	if s.exiting {
		s.finishStopped()
	}
}

func (s *supervisor) cancelProbe() {
	if s.probeCancel != nil {
		s.probeCancel()
		s.probeCancel = nil
	}
	stopTimer(&s.probeT)
	stopTimer(&s.kickT)
	s.kickPending = false
}

// startProbe asks the engine what the current state needs to know, in a
// goroutine that ends with its timeout or when the loop ends.
func (s *supervisor) startProbe() {
	if s.proc == nil || s.stopping {
		return
	}
	var kind probeKind
	var timeout time.Duration
	switch s.st.State {
	case Starting:
		kind, timeout = probeReadiness, readinessProbeTimeout
		if sm := s.spec.Health.Smoke; sm != nil {
			timeout += sm.Timeout
		}
	case Ready:
		kind, timeout = probeLiveness, livenessProbeTimeout
	case Draining:
		kind, timeout = probeBusy, busyProbeTimeout
	default:
		return
	}
	s.cancelProbe()
	s.lastProbeAt = s.now
	ctx, cancel := context.WithTimeout(s.life, timeout)
	s.probeCancel = cancel
	t := s.target
	t.PID = s.proc.PID()
	seq, prober, smoke := s.seq, s.deps.Prober, s.spec.Health.Smoke
	go func() {
		defer cancel()
		r := probeResult{seq: seq, kind: kind}
		switch kind {
		case probeReadiness, probeLiveness:
			r.code, r.detail, r.err = prober.Health(ctx, t)
			if r.err != nil {
				r.detail = r.err.Error()
			}
			if kind == probeReadiness && r.err == nil && t.Protocol.ready(r.code) {
				r.confirm = prober.Confirm(ctx, t)
				if r.confirm == nil && smoke != nil {
					sctx, scancel := context.WithTimeout(ctx, smoke.Timeout)
					r.smoke, r.smokeErr = prober.Complete(sctx, t, smoke.Prompt, smoke.NPredict)
					if sctx.Err() == context.DeadlineExceeded {
						r.smokeErr = fmt.Errorf("no completion within %s", smoke.Timeout)
					}
					scancel()
					r.smoked = true
				}
			}
		case probeBusy:
			r.inFlight, r.err = prober.InFlight(ctx, t)
		}
		select {
		case s.probes <- r:
		case <-s.loopDone:
		}
	}()
}

func (s *supervisor) probed(r probeResult) {
	if r.seq != s.seq || s.proc == nil || s.stopping {
		return // about an engine or a phase that is gone
	}
	s.probeCancel = nil
	switch {
	case r.kind == probeReadiness && s.st.State == Starting:
		s.readinessAnswered(r)
	case r.kind == probeLiveness && s.st.State == Ready:
		s.livenessAnswered(r)
	case r.kind == probeBusy && s.st.State == Draining:
		if r.err == nil && r.inFlight == 0 {
			s.log.Info("no requests in flight; stopping the drained engine")
			s.st.InFlight = 0
			s.stopEngine(s.spec.StopGrace, func(ExitStatus) { s.finishStopped() })
			return
		}
		if r.err != nil {
			// Without counts we cannot know the engine is idle: wait for
			// the deadline rather than cut requests off.
			s.log.Warn("cannot see in-flight requests; waiting for the drain deadline", "err", r.err)
			r.inFlight = InFlightUnknown
		}
		if r.inFlight != s.st.InFlight {
			s.st.InFlight = r.inFlight
			s.publish()
		}
		s.probeT = s.deps.Clock.NewTimer(drainPollInterval)
	}
}

func (s *supervisor) readinessAnswered(r probeResult) {
	if r.err != nil || !s.target.Protocol.ready(r.code) {
		s.lastAnswer = r.detail
		if r.err == nil && !s.target.Protocol.loading(r.code) {
			s.lastAnswer += ", which this engine answers neither when ready nor while loading: is health.path right?"
		}
		s.notReadyYet()
		return
	}
	// Trust a 200 only while our child is alive: an engine that died on a
	// taken port leaves the other server answering.
	select {
	case es := <-s.procDone:
		s.exited(es)
		return
	default:
	}
	if r.confirm != nil {
		var foreign *ForeignServerError
		if errors.As(r.confirm, &foreign) {
			msg := foreign.Error()
			s.log.Error("another server answers on the engine's port", "err", msg)
			s.stopEngine(s.spec.StopGrace, func(ExitStatus) { s.failForGood(msg) })
			return
		}
		s.lastAnswer = "200, but " + r.confirm.Error()
		s.notReadyYet()
		return
	}
	if sm := s.spec.Health.Smoke; sm != nil {
		if !r.smoked {
			s.notReadyYet() // the smoke block came with a settings update
			return
		}
		if msg := smokeVerdict(sm, r.smoke, r.smokeErr); msg != "" {
			s.log.Error("smoke completion failed; stopping the engine", "err", msg)
			s.stopEngine(s.spec.StopGrace, func(ExitStatus) { s.decide(ending{failed: true, cause: msg, tail: s.elog.Tail()}) })
			return
		}
	}
	s.becomeReady()
}

// smokeVerdict says why the smoke completion does not make the engine
// ready, "" when it does.
func smokeVerdict(sm *SmokePolicy, answer string, err error) string {
	if err != nil {
		return fmt.Sprintf("smoke completion of %q failed: %v", sm.Prompt, err)
	}
	re, rerr := regexp.Compile(sm.Expect)
	if rerr != nil {
		return fmt.Sprintf("smoke expect %q is not a regular expression: %v", sm.Expect, rerr)
	}
	if !re.MatchString(answer) {
		return fmt.Sprintf("smoke completion of %q answered %q, which does not match %q", sm.Prompt, answer, sm.Expect)
	}
	return ""
}

// notReadyYet waits for the next readiness probe: the next interval tick,
// or sooner when the engine wrote output while the last probe was out.
func (s *supervisor) notReadyYet() {
	s.probeT = s.deps.Clock.NewTimer(s.spec.Health.Interval)
	if s.kickPending {
		s.kickPending = false
		s.kick()
	}
}

// engineOutput handles output from a starting engine. llama-server logs as
// it finishes loading ("main: model loaded", then "server is listening"),
// so every chunk of output (other than the log lines of the supervisor's
// own probes) triggers a readiness probe at once instead of at the next
// interval tick, which stays the fallback. Probes stay coalesced: at most
// one in flight, and at most one triggered probe per readinessKickGap.
func (s *supervisor) engineOutput() {
	if s.proc == nil || s.stopping || s.st.State != Starting {
		return
	}
	if s.probeCancel != nil {
		// The probe in flight may have left before the output: probe
		// again once it answers.
		s.kickPending = true
		return
	}
	s.kick()
}

// kick starts a readiness probe now, or once readinessKickGap has passed
// since the last probe started.
func (s *supervisor) kick() {
	if s.kickT != nil {
		return
	}
	if wait := readinessKickGap - s.now.Sub(s.lastProbeAt); wait > 0 {
		s.kickT = s.deps.Clock.NewTimer(wait)
		return
	}
	s.startProbe()
}

func (s *supervisor) becomeReady() {
	now := s.now
	stopTimer(&s.startT)
	if s.proc != nil {
		s.watchOOM(s.proc.PID())
	}
	s.elog.watchOutput(false)
	s.tracker.Succeeded(now)
	s.st.State, s.st.ReadyAt, s.st.NextRestartAt = Ready, now, time.Time{}
	s.st.Cause, s.st.CauseLine = "", ""
	first := !s.everReady
	s.everReady = true
	if err := s.writeHandoff(first, false); err != nil {
		s.log.Error("writing handoff file", "err", err)
		s.st.LastError = err.Error()
	}
	s.publish()
	s.gateDone()
	s.probeT = s.deps.Clock.NewTimer(s.spec.Health.LiveInterval)
}

func (s *supervisor) livenessAnswered(r probeResult) {
	if r.err == nil && s.target.Protocol.ready(r.code) {
		s.liveFails = 0
		s.probeT = s.deps.Clock.NewTimer(s.spec.Health.LiveInterval)
		return
	}
	s.liveFails++
	if s.liveFails < s.spec.Health.Failures {
		s.probeT = s.deps.Clock.NewTimer(s.spec.Health.LiveInterval)
		return
	}
	ranFor := s.now.Sub(s.st.ReadyAt)
	cause := fmt.Sprintf("engine unhealthy: %d liveness probes failed in a row (last: %s)", s.liveFails, r.detail)
	s.st.State, s.st.LastError = Unhealthy, cause
	s.releaseHandoff()
	s.publish()
	s.stopEngine(s.spec.StopGrace, func(ExitStatus) { s.decide(ending{failed: true, ranFor: ranFor, cause: cause}) })
}

func (s *supervisor) startTimedOut() {
	if s.proc == nil || s.st.State != Starting {
		return
	}
	msg := fmt.Sprintf("not ready after %s", s.startTimeout)
	if s.lastAnswer != "" {
		msg += fmt.Sprintf(" (last %s answer: %s)", s.target.HealthPath, s.lastAnswer)
	}
	s.log.Error("engine not ready in time; killing it", "start_timeout", s.startTimeout)
	s.stopEngine(s.spec.StopGrace, func(ExitStatus) { s.decide(ending{failed: true, cause: msg, tail: s.elog.Tail()}) })
}

// stopEngine runs the stop sequence and calls after once the engine is gone:
//
//  1. send SIGTERM to the engine's process group (the engine and anything
//     it forked);
//  2. wait up to grace for it to exit;
//  3. send SIGKILL to the group;
//  4. wait for the exit, which os/exec's WaitDelay bounds even when a
//     grandchild holds the log pipe.
//
// Any exit after step 1 — status 0 or 1, death by SIGTERM or SIGABRT
// (llama-server build 4748 aborts on SIGTERM) — is a finished stop, never a
// crash to restart. A stop already under way keeps its grace and takes the
// newest after.
func (s *supervisor) stopEngine(grace time.Duration, after func(ExitStatus)) {
	if s.proc == nil {
		after(ExitStatus{})
		return
	}
	s.afterStop = after
	if s.stopping {
		return
	}
	s.stopping = true
	s.elog.watchOutput(false)
	s.cancelProbe()
	stopTimer(&s.startT)
	stopTimer(&s.drainT)
	s.repeatedStop = false
	if err := s.proc.Signal(s.target.Protocol.stopSignal()); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Error("stopping engine", "err", err)
	}
	s.graceT = s.deps.Clock.NewTimer(grace)
}

// repeatStopGrace is how long an engine whose protocol says a second stop
// signal forces its exit gets after that signal, before SIGKILL.
const repeatStopGrace = time.Second

func (s *supervisor) graceExpired() {
	if s.proc == nil {
		return
	}
	if s.target.Protocol.RepeatStopForcesExit && !s.repeatedStop {
		s.repeatedStop = true
		s.log.Warn("engine did not stop within its grace period; signalling it again, which makes it exit at once")
		if err := s.proc.Signal(s.target.Protocol.stopSignal()); err != nil && !errors.Is(err, syscall.ESRCH) {
			s.log.Error("stopping engine", "err", err)
		}
		s.graceT = s.deps.Clock.NewTimer(repeatStopGrace)
		return
	}
	s.log.Warn("engine did not stop within its grace period; killing it")
	if err := s.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Error("killing engine", "err", err)
	}
}

// exited handles the engine's exit.
func (s *supervisor) exited(es ExitStatus) {
	now := s.now
	s.log.Info("engine exited", "pid", s.st.PID, "status", es.String())
	var ranFor time.Duration
	if !s.st.ReadyAt.IsZero() {
		ranFor = now.Sub(s.st.ReadyAt)
	}
	wasStarting := s.st.State == Starting
	s.proc, s.procDone = nil, nil
	s.elog.watchOutput(false)
	s.cancelProbe()
	stopTimer(&s.startT)
	stopTimer(&s.graceT)
	stopTimer(&s.drainT)
	_ = s.deps.Fs.Remove(filepath.Join(s.spec.RunDir, EnginePIDFile))
	s.releaseHandoff()
	s.st.PID = 0
	if s.stopping {
		s.stopping = false
		after := s.afterStop
		s.afterStop = nil
		after(es)
		return
	}
	if s.draining {
		s.finishStopped() // it went on its own; the drain is over
		return
	}
	tail := s.elog.Tail()
	cause, line := classify(tail, s.target.Protocol.LogCauses)
	if cause == CauseCrashed {
		if oomLine, ok := s.killedForMemory(es); ok {
			cause, line = CauseOutOfMemory, oomLine
		}
	}
	s.st.Cause, s.st.CauseLine = string(cause), line
	if wasStarting {
		if msg, ok := bindFailure(s.spec.Host, s.spec.Port, tail); ok {
			s.decide(ending{failed: true, cause: msg, tail: tail, transient: true})
			return
		}
		if cause.Configuration() {
			s.decide(ending{failed: true, cause: fmt.Sprintf("engine %s during start: %s (%s)", es, cause, line), tail: tail, configuration: true})
			return
		}
		s.decide(ending{failed: true, cause: fmt.Sprintf("engine %s during start", es), tail: tail})
		return
	}
	if cause.Configuration() {
		s.decide(ending{failed: true, ranFor: ranFor, cause: fmt.Sprintf("engine %s: %s (%s)", es, cause, line), tail: tail, configuration: true})
		return
	}
	s.decide(ending{failed: es.Failed(), ranFor: ranFor, cause: "engine " + es.String(), tail: tail})
}

// killedForMemory tells a kernel OOM kill from any other SIGKILL: the
// engine died of a SIGKILL the supervisor did not send (a stop is handled
// before), and the kernel's OOM kill count rose while it ran. Another
// process killed for memory at the same moment as a SIGKILL from someone
// else would be taken for one too; the line says what was seen.
func (s *supervisor) killedForMemory(es ExitStatus) (string, bool) {
	if es.Signal != syscall.SIGKILL || !s.oomKnown {
		return "", false
	}
	now, ok := s.oom.read()
	if !ok || now <= s.oomAtStart {
		return "", false
	}
	return fmt.Sprintf("killed by the kernel's OOM killer (SIGKILL, and oom_kill in %s rose from %d to %d while it ran)", s.oom.path, s.oomAtStart, now), true
}

// watchOOM starts counting OOM kills for engine pid's memory cgroup. It
// runs at spawn and again once the engine is ready: an engine (or the
// service manager) may move it to another cgroup while it loads, and that
// cgroup's count is the one that tells.
func (s *supervisor) watchOOM(pid int) {
	c := oomCounterOf(pid)
	if c == s.oom && s.oomKnown {
		return
	}
	s.oom = c
	s.oomAtStart, s.oomKnown = c.read()
}

// ending is what ended an engine, or a try to start one, for decide.
type ending struct {
	failed bool
	ranFor time.Duration // how long it served; 0 when it never became ready
	cause  string
	tail   []string // the engine's last log lines; nil when there is no log to show
	// transient: the start failed for a reason that passes (the port is
	// held by connections still closing, or by a process that may go), so
	// even the launcher's health gate retries it under the restart policy
	// instead of failing at once.
	transient bool
	// floor is the least wait before a retry: a start that failed before
	// any engine ran must not turn a zero backoff into a busy loop.
	floor time.Duration
	// configuration: restarting cannot help (the model does not load, a
	// flag is wrong, memory does not suffice), so the breaker opens at
	// once rather than restart-looping.
	configuration bool
}

// spawnRetryFloor is ending.floor for a restart refused before spawning.
const spawnRetryFloor = 100 * time.Millisecond

// decide asks the restart tracker what follows an exit and does it. The
// first start is the launcher's health gate: if it fails, the replica is
// failed at once (the launcher reports why and stops the supervisor)
// rather than retried behind the launcher's back, unless the failure is
// transient; then the gate waits for the retries, and ends when the
// policy gives up.
func (s *supervisor) decide(e ending) {
	if s.exiting {
		s.finishStopped()
		return
	}
	gate := s.notify != nil && !s.everReady
	if gate && !e.transient {
		s.failForGood(withTail(e.cause, e.tail))
		return
	}
	now := s.now
	d := s.tracker.Exited(now, e.ranFor, e.failed).AtLeast(e.floor)
	if e.configuration && d.Action == restart.RestartAfter {
		d = s.tracker.OpenNow(now)
	}
	s.st.PID, s.st.NextRestartAt = 0, time.Time{}
	s.st.LastError = e.cause + "; " + d.Reason
	if e.tail != nil {
		s.st.LastError = withTail(s.st.LastError, e.tail)
	}
	if gate && d.Action != restart.RestartAfter {
		defer s.gateDone()
	}
	switch d.Action {
	case restart.RestartAfter:
		if d.Delay > 0 {
			s.st.State, s.st.NextRestartAt = Backoff, now.Add(d.Delay)
			s.backoffT = s.deps.Clock.NewTimer(d.Delay)
			s.publish()
			return
		}
		s.restartNow()
	case restart.OpenCircuit:
		s.st.State = Failed
		if d.Delay > 0 {
			s.st.NextRestartAt = now.Add(d.Delay)
			s.backoffT = s.deps.Clock.NewTimer(d.Delay)
		}
		s.publish()
	case restart.Stop:
		s.st.State = Stopped
		if e.failed {
			s.st.State = Failed
		}
		s.publish()
	}
}

// restartNow starts a replacement engine (after a backoff, a zero delay or
// a cooldown's half-open try).
func (s *supervisor) restartNow() {
	s.st.Restarts++
	s.st.State, s.st.NextRestartAt = Restarting, time.Time{}
	s.publish()
	s.spawn()
}

// finishStopped ends in state stopped once no engine runs.
func (s *supervisor) finishStopped() {
	s.draining = false
	stopTimer(&s.backoffT)
	stopTimer(&s.drainT)
	s.cancelProbe()
	s.releaseHandoff()
	s.st.State, s.st.PID, s.st.NextRestartAt = Stopped, 0, time.Time{}
	s.publish()
	s.gateDone()
	for _, w := range s.drainWaiters {
		w <- s.st
	}
	s.drainWaiters = nil
	if s.exiting {
		s.done = true
	}
}

// shutdown stops the engine for good and ends the loop.
func (s *supervisor) shutdown(grace time.Duration) {
	s.exiting = true
	stopTimer(&s.backoffT)
	if s.proc == nil {
		s.finishStopped()
		return
	}
	s.stopEngine(grace, func(ExitStatus) { s.finishStopped() })
}

func (s *supervisor) handle(req request) {
	switch req.op {
	case opWatch:
		s.watchers[req.watch] = struct{}{}
		sendLatest(req.watch, s.st)
	case opUnwatch:
		if _, ok := s.watchers[req.watch]; ok {
			delete(s.watchers, req.watch)
			close(req.watch)
		}
	case opStop:
		s.stopWaiters = append(s.stopWaiters, req.reply)
		grace := req.grace
		if grace <= 0 {
			grace = s.spec.StopGrace
		}
		s.shutdown(grace)
	case opDrain:
		s.drain(req.reply, req.deadline)
	case opUpdate:
		req.done <- s.update(req.settings)
	}
}

// drain marks the replica draining, waits until the engine has no requests
// in flight or the drain deadline passes (deadline, or the spec's when 0),
// then stops it (state stopped). A drain under way ends by the earlier of
// its deadline and this one's.
func (s *supervisor) drain(reply chan Status, deadline time.Duration) {
	if deadline <= 0 {
		deadline = s.spec.Drain.Deadline
	}
	switch {
	case s.exiting || (s.st.State == Stopped && s.proc == nil):
		reply <- s.st
		return
	case s.proc == nil: // backoff or failed: nothing runs
		s.drainWaiters = append(s.drainWaiters, reply)
		s.finishStopped()
		return
	}
	s.drainWaiters = append(s.drainWaiters, reply)
	switch {
	case s.stopping:
		s.afterStop = func(ExitStatus) { s.finishStopped() }
	case s.st.State == Starting:
		// Not serving yet, so nothing can be in flight.
		s.draining = true
		s.stopEngine(s.spec.StopGrace, func(ExitStatus) { s.finishStopped() })
	case s.st.State == Ready:
		s.draining = true
		s.st.State, s.st.InFlight, s.st.DrainCutOff = Draining, 0, false
		if err := s.writeHandoff(false, true); err != nil {
			s.log.Error("marking handoff file draining", "err", err)
		}
		s.publish()
		s.cancelProbe()
		s.armDrainDeadline(deadline)
		s.startProbe()
	case s.st.State == Draining && s.now.Add(deadline).Before(s.drainEnds):
		stopTimer(&s.drainT)
		s.armDrainDeadline(deadline)
	}
}

func (s *supervisor) armDrainDeadline(d time.Duration) {
	s.drainDeadline, s.drainEnds = d, s.now.Add(d)
	s.st.DrainEndsAt = s.drainEnds
	s.drainT = s.deps.Clock.NewTimer(d)
}

// update applies new settings in place (op "update"); the engine keeps
// running. Invalid settings, or a spec.json that cannot be rewritten,
// change nothing. Otherwise the new settings take effect as follows:
//
//   - health: the next probe waits the new interval (a pending wait is
//     replaced by one of the new interval from now); the new failure
//     threshold judges the next liveness answer; a new health path is
//     asked from the next probe on. A start under way keeps its
//     start_timeout; the next start gets the new one.
//   - restart: the tracker takes the new policy and keeps its failure
//     count and breaker (see restart.Tracker.SetPolicy); a restart already
//     scheduled (backoff, or a half-open try after the cooldown) keeps its
//     time, and a replica failed for good stays failed: an update never
//     starts or stops the engine.
//   - drain: the deadline applies to the next drain, not to one under way.
//   - labels: they go into the handoff template and, while the replica is
//     ready and the handoff file is its own, into the file at once.
//
// spec.json is rewritten first, atomically, with the spec as it now runs
// (defaults filled in), so later reads of it agree with the supervisor.
func (s *supervisor) update(set Settings) error {
	set = set.WithDefaults()
	if err := set.Validate(); err != nil {
		return fmt.Errorf("invalid settings: %w", err)
	}
	next := s.spec.withSettings(set)
	if err := writeSpec(s.deps.Fs, next); err != nil {
		return fmt.Errorf("recording the new settings in %s (nothing changed): %w", filepath.Join(s.spec.RunDir, SpecFile), err)
	}
	s.spec = next
	s.target.HealthPath = next.Health.Path
	s.elog.setQuiet(probeLogLines(next.Health.Path, s.target.Protocol))
	s.tracker.SetPolicy(next.Restart)
	s.rearmProbe()
	s.log.Info("settings updated", "health", next.Health, "restart", next.Restart, "drain", next.Drain, "labels", next.Handoff.Labels)
	if err := s.relabelHandoff(); err != nil {
		return fmt.Errorf("settings applied, but the handoff file %s still has the old labels: %w", next.HandoffPath, err)
	}
	return nil
}

// rearmProbe replaces a pending wait for the next readiness or liveness
// probe with one of the current interval. Without a pending wait a probe
// is in flight, and its answer arms the next wait with the current
// interval anyway.
func (s *supervisor) rearmProbe() {
	if s.probeT == nil {
		return
	}
	var d time.Duration
	switch s.st.State {
	case Starting:
		d = s.spec.Health.Interval
	case Ready:
		d = s.spec.Health.LiveInterval
	default:
		return // draining polls at its own pace
	}
	stopTimer(&s.probeT)
	s.probeT = s.deps.Clock.NewTimer(d)
}

// relabelHandoff rewrites the handoff file with the current template while
// the replica is ready and the file is its own.
func (s *supervisor) relabelHandoff() error {
	if s.st.State != Ready || s.spec.HandoffPath == "" {
		return nil
	}
	f, exists, err := readHandoff(s.deps.Fs, s.spec.HandoffPath)
	if err != nil {
		return err
	}
	if !exists || !s.ownPIDs[f.PID] {
		return nil
	}
	return s.writeHandoff(false, false)
}
