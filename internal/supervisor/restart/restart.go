package restart

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Restart policies, as written in a pool's restart block.
const (
	Always    = "always"     // restart after any exit
	OnFailure = "on-failure" // restart only after a failed exit
	Never     = "never"      // never restart
)

// Policy mirrors a pool's restart block. It is the one restart policy type
// of the supervisor: spec.json and the settings update carry it as is.
type Policy struct {
	Policy         string        `json:"policy"` // Always, OnFailure or Never; "" means Always
	InitialBackoff time.Duration `json:"initial_backoff"`
	MaxBackoff     time.Duration `json:"max_backoff"` // 0 = no cap
	Multiplier     float64       `json:"multiplier"`  // below 1 counts as 1 (no growth)
	Jitter         float64       `json:"jitter"`      // fraction, 0.1 = ±10 %
	// ResetAfter is how long a run must stay healthy for its exit to reset
	// the backoff and the failure count; 0 disables the reset.
	ResetAfter time.Duration `json:"reset_after"`
	// MaxFailures consecutive failures open the circuit breaker; 0 disables it.
	MaxFailures int `json:"max_failures"`
	// Cooldown is how long the breaker stays open before one half-open try;
	// 0 keeps the replica failed until the next apply.
	Cooldown time.Duration `json:"cooldown"`
}

// Validate reports every field that cannot drive a Tracker.
func (p Policy) Validate() error {
	var errs []error
	switch p.Policy {
	case "", Always, OnFailure, Never:
	default:
		errs = append(errs, fmt.Errorf("restart policy %q is not one of %q, %q or %q", p.Policy, Always, OnFailure, Never))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"initial_backoff", p.InitialBackoff}, {"max_backoff", p.MaxBackoff}, {"reset_after", p.ResetAfter}, {"cooldown", p.Cooldown}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("restart %s is %s; it must not be negative", d.name, d.v))
		}
	}
	if p.MaxBackoff > 0 && p.MaxBackoff < p.InitialBackoff {
		errs = append(errs, fmt.Errorf("restart max_backoff %s is shorter than initial_backoff %s", p.MaxBackoff, p.InitialBackoff))
	}
	if p.Multiplier < 0 || math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) {
		errs = append(errs, fmt.Errorf("restart multiplier %v must be a finite number of at least 1", p.Multiplier))
	}
	if p.Jitter < 0 || p.Jitter > 1 || math.IsNaN(p.Jitter) {
		errs = append(errs, fmt.Errorf("restart jitter %v must be between 0 and 1", p.Jitter))
	}
	if p.MaxFailures < 0 {
		errs = append(errs, fmt.Errorf("restart max_failures %d must not be negative", p.MaxFailures))
	}
	return errors.Join(errs...)
}

// Action is what a Decision tells the supervisor to do.
type Action int

const (
	// RestartAfter: start the engine again after Decision.Delay.
	RestartAfter Action = iota + 1
	// OpenCircuit: the replica is failed; make one half-open try after
	// Decision.Delay (the cooldown), or none when Delay is 0.
	OpenCircuit
	// Stop: do not restart; the policy does not allow it.
	Stop
)

func (a Action) String() string {
	switch a {
	case RestartAfter:
		return "restart-after"
	case OpenCircuit:
		return "open-circuit"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is the Tracker's answer to an exit.
type Decision struct {
	Action Action
	Delay  time.Duration
	// Reason is user-facing; it becomes part of a replica's last_error.
	Reason string

	// Attempt is RestartAfter's attempt number since the last reset.
	Attempt int
}

// Reasons, shown to users. The formatted ones take the values named in
// their comments.
const (
	// ReasonNever: policy "never".
	ReasonNever = `restart policy "never" does not restart the engine`
	// ReasonCleanExit: policy "on-failure" and the engine exited cleanly.
	ReasonCleanExit = `restart policy "on-failure" does not restart an engine that exited cleanly`
	// ReasonRestarting: delay, attempt number since the last reset.
	ReasonRestarting = "restarting in %s (attempt %d)"
	// ReasonCircuitOpen: consecutive failures, cooldown.
	ReasonCircuitOpen = "circuit breaker open after %d consecutive failures; next try in %s"
	// ReasonCircuitOpenUntilApply: consecutive failures.
	ReasonCircuitOpenUntilApply = "circuit breaker open after %d consecutive failures; cooldown is 0s, so the replica stays failed until the next apply"
	// ReasonHalfOpenFailed: cooldown.
	ReasonHalfOpenFailed = "circuit breaker reopened: the try after the cooldown failed; next try in %s"
	// ReasonCircuitOpenNow: cooldown.
	ReasonCircuitOpenNow = "circuit breaker open at once: restarting cannot fix this; fix the configuration and run llorch apply, or wait for the try in %s"
	// ReasonCircuitOpenNowUntilApply has no values.
	ReasonCircuitOpenNowUntilApply = "circuit breaker open at once: restarting cannot fix this; fix the configuration and run llorch apply"
	// ReasonHalfOpenFailedUntilApply has no values.
	ReasonHalfOpenFailedUntilApply = "circuit breaker reopened: the try after the cooldown failed; the replica stays failed until the next apply"
)

// Tracker remembers a replica's recent exits and decides on each one.
// It is not safe for concurrent use: one supervisor loop owns it.
type Tracker struct {
	p   Policy
	rnd *rand.Rand

	failures int // consecutive failed exits since the last reset
	attempts int // restarts since the last reset; drives the backoff exponent
	// immediate: the first of those restarts was immediate (it followed a
	// run that served), so backing off starts one attempt later.
	immediate bool
	open      bool // breaker open, or its half-open try running
	openedAt  time.Time
	readyAt   time.Time
}

// NewTracker returns a Tracker for p. rnd supplies jitter; it may be nil
// when p.Jitter is 0 (with nil, no jitter is applied).
func NewTracker(p Policy, rnd *rand.Rand) *Tracker {
	if p.Policy == "" {
		p.Policy = Always
	}
	return &Tracker{p: p, rnd: rnd}
}

// Exited records an engine exit and decides what to do. failed is true for
// a non-zero exit status, a death by signal, or a liveness or start
// failure; ranFor is how long the engine served (ready until exit), 0 when
// it never became ready. A healthy run of at least ResetAfter resets the
// backoff and the failure count.
func (t *Tracker) Exited(now time.Time, ranFor time.Duration, failed bool) Decision {
	if t.p.ResetAfter > 0 && ranFor >= t.p.ResetAfter {
		t.failures, t.attempts, t.open, t.immediate = 0, 0, false, false
	}
	if failed {
		t.failures++
	}
	switch {
	case t.p.Policy == Never:
		return Decision{Action: Stop, Reason: ReasonNever}
	case t.p.Policy == OnFailure && !failed:
		return Decision{Action: Stop, Reason: ReasonCleanExit}
	}
	if t.open {
		if failed && t.p.MaxFailures > 0 {
			// The half-open try failed: reopen at once, no counting again.
			t.openedAt = now
			if t.p.Cooldown == 0 {
				return Decision{Action: OpenCircuit, Reason: ReasonHalfOpenFailedUntilApply}
			}
			return Decision{Action: OpenCircuit, Delay: t.p.Cooldown, Reason: fmt.Sprintf(ReasonHalfOpenFailed, t.p.Cooldown)}
		}
		t.open = false
	}
	if failed && t.p.MaxFailures > 0 && t.failures >= t.p.MaxFailures {
		t.open, t.openedAt = true, now
		if t.p.Cooldown == 0 {
			return Decision{Action: OpenCircuit, Reason: fmt.Sprintf(ReasonCircuitOpenUntilApply, t.failures)}
		}
		return Decision{Action: OpenCircuit, Delay: t.p.Cooldown, Reason: fmt.Sprintf(ReasonCircuitOpen, t.failures, t.p.Cooldown)}
	}
	t.attempts++
	if t.attempts == 1 && ranFor > 0 {
		// The first restart after a run that served is immediate, as
		// Kubernetes does: one crash costs the restart itself (tens of
		// milliseconds), not a second of backoff. Backing off starts with
		// the second consecutive restart.
		t.immediate = true
		return Decision{Action: RestartAfter, Reason: fmt.Sprintf(ReasonRestarting, time.Duration(0), 1), Attempt: 1}
	}
	n := t.attempts
	if t.immediate {
		n-- // the immediate restart was not a backoff step
	}
	d := t.backoff(n)
	return Decision{Action: RestartAfter, Delay: d, Reason: fmt.Sprintf(ReasonRestarting, d, t.attempts), Attempt: t.attempts}
}

// OpenNow opens the breaker at once, after an exit that restarting cannot
// repair (the engine's configuration is at fault): one half-open try after
// the cooldown, as after max_failures, or none when the cooldown is 0.
func (t *Tracker) OpenNow(now time.Time) Decision {
	t.open, t.openedAt = true, now
	if t.p.Cooldown == 0 {
		return Decision{Action: OpenCircuit, Reason: ReasonCircuitOpenNowUntilApply}
	}
	return Decision{Action: OpenCircuit, Delay: t.p.Cooldown, Reason: fmt.Sprintf(ReasonCircuitOpenNow, t.p.Cooldown)}
}

// AtLeast returns d with a restart delayed to at least floor, its reason
// saying so.
func (d Decision) AtLeast(floor time.Duration) Decision {
	if d.Action == RestartAfter && d.Delay < floor {
		d.Delay = floor
		d.Reason = fmt.Sprintf(ReasonRestarting, floor, d.Attempt)
	}
	return d
}

// SetPolicy replaces the policy in place (a settings update) and keeps
// what the Tracker remembers: the consecutive failures, the backoff
// attempts and the breaker's state. The new policy judges the next exit:
// its backoff continues from the attempts so far, and a max_failures at or
// below the failures so far opens the breaker at the next failed exit, not
// at once. An open breaker stays open, and the half-open try the caller
// has already scheduled keeps its time; that try's outcome is judged under
// the new policy: success closes the breaker, failure reopens it for the
// new cooldown, or, when the new policy has no breaker (max_failures 0),
// counts as an ordinary failure and backs off.
func (t *Tracker) SetPolicy(p Policy) {
	if p.Policy == "" {
		p.Policy = Always
	}
	t.p = p
}

// Succeeded records that the engine became ready. After a half-open try it
// closes the breaker and forgets the failures; otherwise it changes nothing
// (consecutive failures are only forgotten after ResetAfter of healthy
// running, so an engine that crashes soon after every start still trips
// the breaker).
func (t *Tracker) Succeeded(now time.Time) {
	t.readyAt = now
	if t.open {
		t.open, t.failures, t.attempts, t.immediate = false, 0, 0, false
	}
}

// Snapshot is a Tracker's memory, for status displays and tests.
type Snapshot struct {
	Failures int       // consecutive failures since the last reset
	Attempts int       // restarts since the last reset
	Open     bool      // breaker open or its half-open try running
	OpenedAt time.Time // when the breaker last opened
	ReadyAt  time.Time // when the engine last became ready
}

// Snapshot returns the Tracker's memory.
func (t *Tracker) Snapshot() Snapshot {
	return Snapshot{Failures: t.failures, Attempts: t.attempts, Open: t.open, OpenedAt: t.openedAt, ReadyAt: t.readyAt}
}

// backoff is InitialBackoff × Multiplier^(n-1), capped at MaxBackoff, then
// moved by up to ±Jitter of itself (so a capped delay may exceed MaxBackoff
// by the jitter fraction, which spreads replicas that crash together).
// Jittered delays are truncated to the millisecond so reasons read well.
func (t *Tracker) backoff(n int) time.Duration {
	mult := max(t.p.Multiplier, 1)
	d := float64(t.p.InitialBackoff) * math.Pow(mult, float64(n-1))
	if t.p.MaxBackoff > 0 && d > float64(t.p.MaxBackoff) {
		d = float64(t.p.MaxBackoff)
	}
	if d > math.MaxInt64/2 {
		d = math.MaxInt64 / 2 // uncapped growth: stay far from overflow
	}
	if t.p.Jitter == 0 || t.rnd == nil || d == 0 {
		return time.Duration(d)
	}
	d += d * t.p.Jitter * (2*t.rnd.Float64() - 1)
	return time.Duration(d).Truncate(time.Millisecond)
}
