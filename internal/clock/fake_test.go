package clock

import (
	"context"
	"testing"
	"time"
)

var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fired returns the value waiting on c, if any, without blocking.
func fired(c <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-c:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimeMovesOnlyOnAdvance(t *testing.T) {
	f := NewFake(epoch)
	if got := f.Now(); !got.Equal(epoch) {
		t.Fatalf("Now() = %v, want %v", got, epoch)
	}
	f.Advance(90 * time.Second)
	if got, want := f.Now(), epoch.Add(90*time.Second); !got.Equal(want) {
		t.Fatalf("after Advance(90s) Now() = %v, want %v", got, want)
	}
	if got := f.Since(epoch); got != 90*time.Second {
		t.Fatalf("Since(start) = %v, want 1m30s", got)
	}
}

func TestFakeTimerFiresExactlyAtItsDeadline(t *testing.T) {
	tests := []struct {
		name      string
		after     time.Duration
		advances  []time.Duration
		wantFired bool
	}{
		{name: "not yet due", after: time.Second, advances: []time.Duration{999 * time.Millisecond}},
		{name: "due at the deadline", after: time.Second, advances: []time.Duration{time.Second}, wantFired: true},
		{name: "due after several small steps", after: time.Second, advances: []time.Duration{400 * time.Millisecond, 400 * time.Millisecond, 200 * time.Millisecond}, wantFired: true},
		{name: "overshooting fires with the deadline as value", after: time.Second, advances: []time.Duration{time.Hour}, wantFired: true},
		{name: "zero duration fires at creation", after: 0, wantFired: true},
		{name: "negative duration fires at creation", after: -time.Second, wantFired: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(epoch)
			tm := f.NewTimer(tc.after)
			for _, d := range tc.advances {
				f.Advance(d)
			}
			v, ok := fired(tm.C())
			if ok != tc.wantFired {
				t.Fatalf("fired = %v, want %v", ok, tc.wantFired)
			}
			if ok && !v.Equal(epoch.Add(tc.after)) {
				t.Fatalf("timer delivered %v, want its deadline %v", v, epoch.Add(tc.after))
			}
			if _, again := fired(tm.C()); again {
				t.Fatal("timer fired twice")
			}
		})
	}
}

func TestFakeAdvanceFiresDueTimersEarliestFirst(t *testing.T) {
	f := NewFake(epoch)
	late := f.NewTimer(3 * time.Second)
	early := f.NewTimer(time.Second)
	never := f.NewTimer(time.Minute)
	f.Advance(5 * time.Second)

	e, ok := fired(early.C())
	if !ok || !e.Equal(epoch.Add(time.Second)) {
		t.Fatalf("early timer: fired=%v value=%v, want value %v", ok, e, epoch.Add(time.Second))
	}
	l, ok := fired(late.C())
	if !ok || !l.Equal(epoch.Add(3*time.Second)) {
		t.Fatalf("late timer: fired=%v value=%v, want value %v", ok, l, epoch.Add(3*time.Second))
	}
	if _, ok := fired(never.C()); ok {
		t.Fatal("timer due in 1m fired after 5s")
	}
	if got := f.Timers(); got != 1 {
		t.Fatalf("Timers() = %d after two fired, want 1", got)
	}
	if next, ok := f.Next(); !ok || !next.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("Next() = %v, %v; want %v, true", next, ok, epoch.Add(time.Minute))
	}
}

func TestFakeTimerStopAndReset(t *testing.T) {
	tests := []struct {
		name       string
		run        func(f *Fake, tm Timer) bool // returns Stop's or Reset's result
		wantResult bool
		advance    time.Duration
		wantFireAt time.Duration // from epoch; 0 = must not fire
		wantAtOnce bool          // fires during Stop/Reset itself
	}{
		{
			name:       "stop before the deadline prevents firing",
			run:        func(f *Fake, tm Timer) bool { return tm.Stop() },
			wantResult: true,
			advance:    time.Hour,
		},
		{
			name: "stop after firing reports false and drops the unread value",
			run: func(f *Fake, tm Timer) bool {
				f.Advance(time.Second)
				return tm.Stop()
			},
			advance: time.Hour,
		},
		{
			name: "reset of an armed timer moves its deadline",
			run: func(f *Fake, tm Timer) bool {
				f.Advance(500 * time.Millisecond)
				return tm.Reset(2 * time.Second)
			},
			wantResult: true,
			advance:    2 * time.Second, // total 2.5s
			wantFireAt: 2500 * time.Millisecond,
		},
		{
			name: "reset of a fired timer rearms it without a stale value",
			run: func(f *Fake, tm Timer) bool {
				f.Advance(time.Second)
				return tm.Reset(time.Second)
			},
			advance:    time.Second,
			wantFireAt: 2 * time.Second,
		},
		{
			name: "reset to zero fires at once",
			run: func(f *Fake, tm Timer) bool {
				return tm.Reset(0)
			},
			wantResult: true,
			wantAtOnce: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(epoch)
			tm := f.NewTimer(time.Second)
			if got := tc.run(f, tm); got != tc.wantResult {
				t.Fatalf("result = %v, want %v", got, tc.wantResult)
			}
			if tc.wantAtOnce {
				if v, ok := fired(tm.C()); !ok || !v.Equal(epoch) {
					t.Fatalf("fired=%v value=%v, want value %v", ok, v, epoch)
				}
				return
			}
			if tc.wantFireAt == 0 {
				f.Advance(tc.advance)
				if v, ok := fired(tm.C()); ok {
					t.Fatalf("timer fired with %v, want no firing", v)
				}
				return
			}
			if _, ok := fired(tm.C()); ok {
				t.Fatal("stale value received right after Stop/Reset")
			}
			f.Advance(tc.advance)
			v, ok := fired(tm.C())
			if !ok || !v.Equal(epoch.Add(tc.wantFireAt)) {
				t.Fatalf("fired=%v value=%v, want value %v", ok, v, epoch.Add(tc.wantFireAt))
			}
		})
	}
}

func TestFakeWaitTimersReturnsOnceCodeUnderTestArmsATimer(t *testing.T) {
	f := NewFake(epoch)
	woke := make(chan time.Time)
	go func() {
		tm := f.NewTimer(5 * time.Second)
		woke <- <-tm.C()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := f.WaitTimers(ctx, 1); err != nil {
		t.Fatalf("WaitTimers: %v", err)
	}
	f.Advance(5 * time.Second)
	select {
	case v := <-woke:
		if !v.Equal(epoch.Add(5 * time.Second)) {
			t.Fatalf("goroutine woke with %v, want %v", v, epoch.Add(5*time.Second))
		}
	case <-ctx.Done():
		t.Fatal("goroutine did not wake after Advance")
	}
}

func TestFakeWaitTimersHonoursContext(t *testing.T) {
	f := NewFake(epoch)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.WaitTimers(ctx, 1); err != context.Canceled {
		t.Fatalf("WaitTimers on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestFakeAdvanceRejectsNegativeDurations(t *testing.T) {
	defer func() {
		r := recover()
		if r != "clock: Fake.Advance with a negative duration" {
			t.Fatalf("recover() = %v, want the negative-duration panic", r)
		}
	}()
	NewFake(epoch).Advance(-time.Second)
}

func TestRealTimerFires(t *testing.T) {
	tm := Real{}.NewTimer(time.Millisecond)
	select {
	case <-tm.C():
	case <-t.Context().Done():
		t.Fatal("real timer never fired")
	}
	if tm.Stop() {
		t.Fatal("Stop after firing reported an armed timer")
	}
}
