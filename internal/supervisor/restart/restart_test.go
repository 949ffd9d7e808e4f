package restart

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// event is one thing that happens to a replica, at an offset from t0.
type event struct {
	at        time.Duration
	ranFor    time.Duration
	failed    bool
	succeeded bool // a ready after the previous decision (Succeeded), not an exit
	// policy, when set, is a settings update (SetPolicy), not an exit.
	policy *Policy
	want   Decision
}

// setPolicy is a settings update in an event list.
func setPolicy(p Policy) event { return event{policy: &p} }

// play feeds events to tr and checks every decision.
func play(t *testing.T, tr *Tracker, events []event) {
	t.Helper()
	for i, ev := range events {
		now := t0.Add(ev.at)
		switch {
		case ev.policy != nil:
			tr.SetPolicy(*ev.policy)
			continue
		case ev.succeeded:
			tr.Succeeded(now)
			continue
		}
		got := tr.Exited(now, ev.ranFor, ev.failed)
		if got != ev.want {
			t.Fatalf("event %d (at %s, failed=%v): got %+v\nwant %+v", i, ev.at, ev.failed, got, ev.want)
		}
	}
}

func exit(at time.Duration, failed bool, want Decision) event {
	return event{at: at, failed: failed, want: want}
}

func restartIn(d time.Duration, attempt int) Decision {
	return Decision{Action: RestartAfter, Delay: d, Reason: "restarting in " + d.String() + " (attempt " + strconv.Itoa(attempt) + ")", Attempt: attempt}
}

var seedDefaults = Policy{Policy: Always, InitialBackoff: time.Second, MaxBackoff: 60 * time.Second, Multiplier: 2, ResetAfter: 5 * time.Minute, MaxFailures: 5, Cooldown: 5 * time.Minute}

func TestTrackerDecisions(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		events []event
	}{
		{
			name:   "backoff doubles from the initial delay",
			policy: Policy{InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2},
			events: []event{
				exit(0, true, restartIn(1*time.Second, 1)),
				exit(2*time.Second, true, restartIn(2*time.Second, 2)),
				exit(5*time.Second, true, restartIn(4*time.Second, 3)),
				exit(10*time.Second, true, restartIn(8*time.Second, 4)),
			},
		},
		{
			name:   "backoff is capped at max_backoff",
			policy: Policy{InitialBackoff: 10 * time.Second, MaxBackoff: 25 * time.Second, Multiplier: 2},
			events: []event{
				exit(0, true, restartIn(10*time.Second, 1)),
				exit(time.Minute, true, restartIn(20*time.Second, 2)),
				exit(2*time.Minute, true, restartIn(25*time.Second, 3)),
				exit(3*time.Minute, true, restartIn(25*time.Second, 4)),
			},
		},
		{
			name:   "a multiplier below one does not shrink the delay",
			policy: Policy{InitialBackoff: 3 * time.Second, Multiplier: 0.5},
			events: []event{
				exit(0, true, restartIn(3*time.Second, 1)),
				exit(time.Minute, true, restartIn(3*time.Second, 2)),
			},
		},
		{
			name:   "initial backoff 0s restarts at once every time",
			policy: Policy{InitialBackoff: 0, MaxBackoff: time.Minute, Multiplier: 2, Jitter: 0.1},
			events: []event{
				exit(0, true, restartIn(0, 1)),
				exit(time.Second, true, restartIn(0, 2)),
			},
		},
		{
			name:   "always restarts after a clean exit too",
			policy: Policy{Policy: Always, InitialBackoff: time.Second, Multiplier: 2},
			events: []event{
				exit(0, false, restartIn(time.Second, 1)),
			},
		},
		{
			name:   "on-failure does not restart a clean exit",
			policy: Policy{Policy: OnFailure, InitialBackoff: time.Second, Multiplier: 2},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				exit(time.Minute, false, Decision{Action: Stop, Reason: `restart policy "on-failure" does not restart an engine that exited cleanly`}),
			},
		},
		{
			name:   "never does not restart even a failure",
			policy: Policy{Policy: Never, InitialBackoff: time.Second, MaxFailures: 1},
			events: []event{
				exit(0, true, Decision{Action: Stop, Reason: `restart policy "never" does not restart the engine`}),
			},
		},
		{
			name:   "max_failures consecutive failures open the breaker for the cooldown",
			policy: seedDefaults,
			events: []event{
				exit(0, true, restartIn(1*time.Second, 1)),
				exit(10*time.Second, true, restartIn(2*time.Second, 2)),
				exit(20*time.Second, true, restartIn(4*time.Second, 3)),
				exit(30*time.Second, true, restartIn(8*time.Second, 4)),
				exit(40*time.Second, true, Decision{Action: OpenCircuit, Delay: 5 * time.Minute, Reason: "circuit breaker open after 5 consecutive failures; next try in 5m0s"}),
			},
		},
		{
			name:   "clean exits do not count towards the breaker",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 1, MaxFailures: 2, Cooldown: time.Minute},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				exit(10*time.Second, false, restartIn(time.Second, 2)),
				exit(20*time.Second, true, Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 2 consecutive failures; next try in 1m0s"}),
			},
		},
		{
			name:   "cooldown 0s keeps the replica failed until the next apply",
			policy: Policy{InitialBackoff: time.Second, MaxFailures: 1},
			events: []event{
				exit(0, true, Decision{Action: OpenCircuit, Reason: "circuit breaker open after 1 consecutive failures; cooldown is 0s, so the replica stays failed until the next apply"}),
			},
		},
		{
			name:   "a successful half-open try closes the breaker and starts the backoff over",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 2, MaxFailures: 2, Cooldown: time.Minute},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				exit(5*time.Second, true, Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 2 consecutive failures; next try in 1m0s"}),
				{at: 66 * time.Second, succeeded: true},
				{at: 90 * time.Second, ranFor: 24 * time.Second, failed: true, want: restartIn(0, 1)}, // after a run that served
				exit(100*time.Second, true, Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 2 consecutive failures; next try in 1m0s"}),
			},
		},
		{
			name:   "a failed half-open try reopens the breaker at once",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 2, MaxFailures: 3, Cooldown: 30 * time.Second},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				exit(5*time.Second, true, restartIn(2*time.Second, 2)),
				exit(10*time.Second, true, Decision{Action: OpenCircuit, Delay: 30 * time.Second, Reason: "circuit breaker open after 3 consecutive failures; next try in 30s"}),
				exit(45*time.Second, true, Decision{Action: OpenCircuit, Delay: 30 * time.Second, Reason: "circuit breaker reopened: the try after the cooldown failed; next try in 30s"}),
				exit(80*time.Second, true, Decision{Action: OpenCircuit, Delay: 30 * time.Second, Reason: "circuit breaker reopened: the try after the cooldown failed; next try in 30s"}),
			},
		},
		{
			name:   "a failed half-open try with cooldown 0s waits for the next apply",
			policy: Policy{InitialBackoff: time.Second, MaxFailures: 1},
			events: []event{
				exit(0, true, Decision{Action: OpenCircuit, Reason: "circuit breaker open after 1 consecutive failures; cooldown is 0s, so the replica stays failed until the next apply"}),
				exit(time.Hour, true, Decision{Action: OpenCircuit, Reason: "circuit breaker reopened: the try after the cooldown failed; the replica stays failed until the next apply"}),
			},
		},
		{
			name:   "a healthy run of reset_after resets backoff and failures",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 2, ResetAfter: 5 * time.Minute, MaxFailures: 3, Cooldown: time.Minute},
			events: []event{
				exit(0, true, restartIn(1*time.Second, 1)),
				exit(10*time.Second, true, restartIn(2*time.Second, 2)),
				{at: 20 * time.Minute, ranFor: 5 * time.Minute, failed: true, want: restartIn(0, 1)}, // after a run that served
				exit(21*time.Minute, true, restartIn(1*time.Second, 2)),
				exit(22*time.Minute, true, Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 3 consecutive failures; next try in 1m0s"}),
			},
		},
		{
			name:   "the first restart after a run that served is immediate; backing off starts with the second",
			policy: seedDefaults,
			events: []event{
				{at: time.Minute, ranFor: time.Minute, failed: true, want: restartIn(0, 1)},
				{at: time.Minute + time.Second, ranFor: time.Second, failed: true, want: restartIn(1*time.Second, 2)},
				{at: time.Minute + 3*time.Second, ranFor: time.Second, failed: true, want: restartIn(2*time.Second, 3)},
				{at: time.Minute + 6*time.Second, ranFor: time.Second, failed: true, want: restartIn(4*time.Second, 4)},
				{at: time.Minute + 11*time.Second, ranFor: time.Second, failed: true, want: Decision{Action: OpenCircuit, Delay: 5 * time.Minute, Reason: "circuit breaker open after 5 consecutive failures; next try in 5m0s"}},
			},
		},
		{
			name:   "an engine that never became ready waits initial_backoff before its first restart",
			policy: seedDefaults,
			events: []event{
				exit(0, true, restartIn(1*time.Second, 1)),
				{at: 10 * time.Second, ranFor: time.Second, failed: true, want: restartIn(2*time.Second, 2)},
			},
		},
		{
			name:   "a run shorter than reset_after keeps counting",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 2, ResetAfter: 5 * time.Minute},
			events: []event{
				exit(0, true, restartIn(1*time.Second, 1)),
				{at: 10 * time.Minute, ranFor: 5*time.Minute - time.Nanosecond, failed: true, want: restartIn(2*time.Second, 2)},
			},
		},
		{
			name:   "reset_after 0s never resets",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 2},
			events: []event{
				exit(0, true, restartIn(1*time.Second, 1)),
				{at: time.Hour, ranFor: 50 * time.Minute, failed: true, want: restartIn(2*time.Second, 2)},
			},
		},
		{
			name:   "readiness outside a half-open try does not forgive failures",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 2, MaxFailures: 2, Cooldown: time.Minute, ResetAfter: time.Hour},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				{at: 2 * time.Second, succeeded: true},
				{at: 12 * time.Second, ranFor: 10 * time.Second, failed: true, want: Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 2 consecutive failures; next try in 1m0s"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			play(t, NewTracker(tc.policy, nil), tc.events)
		})
	}
}

func TestTrackerSetPolicyKeepsWhatItRemembers(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		events []event
	}{
		{
			name:   "the new backoff continues from the attempts so far",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 2},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				exit(10*time.Second, true, restartIn(2*time.Second, 2)),
				setPolicy(Policy{InitialBackoff: 10 * time.Second, Multiplier: 3}),
				exit(20*time.Second, true, restartIn(90*time.Second, 3)),
			},
		},
		{
			name:   "a max_failures below the failures so far opens the breaker at the next failure",
			policy: Policy{InitialBackoff: time.Second, Multiplier: 1, MaxFailures: 5, Cooldown: time.Minute},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				exit(10*time.Second, true, restartIn(time.Second, 2)),
				exit(20*time.Second, true, restartIn(time.Second, 3)),
				setPolicy(Policy{InitialBackoff: time.Second, Multiplier: 1, MaxFailures: 2, Cooldown: 2 * time.Minute}),
				exit(30*time.Second, true, Decision{Action: OpenCircuit, Delay: 2 * time.Minute, Reason: "circuit breaker open after 4 consecutive failures; next try in 2m0s"}),
			},
		},
		{
			name:   "an open breaker stays open and a failed try reopens it for the new cooldown",
			policy: Policy{InitialBackoff: time.Second, MaxFailures: 1, Cooldown: time.Minute},
			events: []event{
				exit(0, true, Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 1 consecutive failures; next try in 1m0s"}),
				setPolicy(Policy{InitialBackoff: time.Second, MaxFailures: 1, Cooldown: 5 * time.Minute}),
				exit(61*time.Second, true, Decision{Action: OpenCircuit, Delay: 5 * time.Minute, Reason: "circuit breaker reopened: the try after the cooldown failed; next try in 5m0s"}),
			},
		},
		{
			name:   "a successful try after the update closes the breaker",
			policy: Policy{InitialBackoff: time.Second, MaxFailures: 1, Cooldown: time.Minute},
			events: []event{
				exit(0, true, Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 1 consecutive failures; next try in 1m0s"}),
				setPolicy(Policy{InitialBackoff: 3 * time.Second, MaxFailures: 2, Cooldown: time.Minute}),
				{at: 61 * time.Second, succeeded: true},
				exit(70*time.Second, true, restartIn(3*time.Second, 1)),
			},
		},
		{
			name:   "a failed try under a policy without a breaker backs off",
			policy: Policy{InitialBackoff: time.Second, MaxFailures: 1, Cooldown: time.Minute},
			events: []event{
				exit(0, true, Decision{Action: OpenCircuit, Delay: time.Minute, Reason: "circuit breaker open after 1 consecutive failures; next try in 1m0s"}),
				setPolicy(Policy{InitialBackoff: 4 * time.Second}),
				exit(61*time.Second, true, restartIn(4*time.Second, 1)),
				exit(70*time.Second, true, restartIn(4*time.Second, 2)),
			},
		},
		{
			name:   "switching to never stops at the next exit",
			policy: Policy{InitialBackoff: time.Second},
			events: []event{
				exit(0, true, restartIn(time.Second, 1)),
				setPolicy(Policy{Policy: Never}),
				exit(10*time.Second, true, Decision{Action: Stop, Reason: `restart policy "never" does not restart the engine`}),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			play(t, NewTracker(tc.policy, nil), tc.events)
		})
	}
}

func TestTrackerSetPolicyKeepsTheFailureCount(t *testing.T) {
	tr := NewTracker(Policy{InitialBackoff: time.Second, MaxFailures: 5, Cooldown: time.Minute}, nil)
	tr.Exited(t0, 0, true)
	tr.Exited(t0.Add(time.Second), 0, true)
	tr.SetPolicy(Policy{MaxFailures: 1})
	if s := tr.Snapshot(); s.Failures != 2 || s.Attempts != 2 || s.Open {
		t.Fatalf("after SetPolicy: %+v, want 2 failures, 2 attempts, breaker closed until the next exit", s)
	}
}

func TestTrackerJitterIsExactForASeed(t *testing.T) {
	// Seeded PCG: the values are fixed by the algorithm, so the test is exact.
	tr := NewTracker(Policy{InitialBackoff: time.Second, MaxBackoff: 60 * time.Second, Multiplier: 2, Jitter: 0.1}, rand.New(rand.NewPCG(1, 2)))
	want := []time.Duration{
		1035 * time.Millisecond,  // 1s  +3.5 %
		1984 * time.Millisecond,  // 2s  -0.8 %
		4006 * time.Millisecond,  // 4s  +0.15 %
		7887 * time.Millisecond,  // 8s  -1.4 %
		16952 * time.Millisecond, // 16s +6 %
		31285 * time.Millisecond, // 32s -2.2 %
		63831 * time.Millisecond, // capped 60s, +6.4 %: jitter may pass the cap
		58058 * time.Millisecond, // capped 60s, -3.2 %
	}
	for i, w := range want {
		d := tr.Exited(t0.Add(time.Duration(i)*time.Minute), 0, true)
		if d.Action != RestartAfter || d.Delay != w {
			t.Fatalf("exit %d: got %v %v, want restart-after %v", i+1, d.Action, d.Delay, w)
		}
		base := min(time.Second<<i, 60*time.Second)
		if lo, hi := base-base/10, base+base/10; d.Delay < lo || d.Delay > hi {
			t.Fatalf("exit %d: delay %v outside ±10 %% of %v", i+1, d.Delay, base)
		}
	}
}

func TestTrackerSnapshotFollowsTheBreaker(t *testing.T) {
	tr := NewTracker(Policy{InitialBackoff: time.Second, MaxFailures: 2, Cooldown: time.Minute}, nil)
	tr.Exited(t0, 0, true)
	if s := tr.Snapshot(); s.Failures != 1 || s.Attempts != 1 || s.Open {
		t.Fatalf("after one failure: %+v", s)
	}
	tr.Exited(t0.Add(time.Second), 0, true)
	if s := tr.Snapshot(); s.Failures != 2 || !s.Open || !s.OpenedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after the breaker opened: %+v", s)
	}
	tr.Succeeded(t0.Add(2 * time.Minute))
	if s := tr.Snapshot(); s.Failures != 0 || s.Attempts != 0 || s.Open || !s.ReadyAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after a successful half-open try: %+v", s)
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		want   []string // every line must appear in the error; nil = valid
	}{
		{name: "seed defaults are valid", policy: seedDefaults},
		{name: "empty policy means always", policy: Policy{}},
		{name: "unknown policy", policy: Policy{Policy: "allways"}, want: []string{`restart policy "allways" is not one of "always", "on-failure" or "never"`}},
		{name: "negative durations", policy: Policy{InitialBackoff: -time.Second, Cooldown: -time.Minute}, want: []string{
			"restart initial_backoff is -1s; it must not be negative",
			"restart cooldown is -1m0s; it must not be negative",
		}},
		{name: "cap below the initial delay", policy: Policy{InitialBackoff: time.Minute, MaxBackoff: time.Second}, want: []string{"restart max_backoff 1s is shorter than initial_backoff 1m0s"}},
		{name: "jitter above one", policy: Policy{Jitter: 1.5}, want: []string{"restart jitter 1.5 must be between 0 and 1"}},
		{name: "negative multiplier", policy: Policy{Multiplier: -2}, want: []string{"restart multiplier -2 must be a finite number of at least 1"}},
		{name: "negative max_failures", policy: Policy{MaxFailures: -1}, want: []string{"restart max_failures -1 must not be negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tc.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("Validate() = %q, want exactly %q", lines, tc.want)
			}
			for i := range lines {
				if lines[i] != tc.want[i] {
					t.Fatalf("error %d = %q, want %q", i, lines[i], tc.want[i])
				}
			}
		})
	}
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{RestartAfter: "restart-after", OpenCircuit: "open-circuit", Stop: "stop", Action(9): "Action(9)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestDecisionAtLeastDelaysOnlyARestartAndSaysSo(t *testing.T) {
	if got, want := restartIn(0, 3).AtLeast(100*time.Millisecond), restartIn(100*time.Millisecond, 3); got != want {
		t.Errorf("AtLeast(100ms) of a 0s restart = %+v, want %+v", got, want)
	}
	if got, want := restartIn(2*time.Second, 1).AtLeast(time.Second), restartIn(2*time.Second, 1); got != want {
		t.Errorf("AtLeast(1s) of a 2s restart = %+v, want it unchanged", got)
	}
	open := Decision{Action: OpenCircuit, Reason: "circuit breaker open"}
	if got := open.AtLeast(time.Second); got != open {
		t.Errorf("AtLeast changed a decision that restarts nothing: %+v", got)
	}
}
