package clock

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Fake is a manual clock for tests: time moves only when Advance is called,
// and timers whose deadline has been reached fire then, earliest first. Its
// timers follow *time.Timer's Go 1.23 semantics: after Stop or Reset returns,
// no stale value is received from C.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer // armed timers, in no particular order
	// changed is closed and replaced whenever a timer is armed or disarmed,
	// so WaitTimers can wait for code under test without polling.
	changed chan struct{}
}

// NewFake returns a Fake reading start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Since is Now().Sub(t).
func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

// NewTimer returns a timer that fires once the fake time reaches Now()+d.
// A timer with d <= 0 fires at once, as time.NewTimer does.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{clock: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.arm(t, d)
	return t
}

// Advance moves the fake time forward by d and fires, earliest deadline
// first, every timer due by then. Each fired timer receives its own
// deadline, as a real timer would.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d < 0 {
		panic("clock: Fake.Advance with a negative duration")
	}
	f.now = f.now.Add(d)
	var due []*fakeTimer
	f.timers = slices.DeleteFunc(f.timers, func(t *fakeTimer) bool {
		if t.deadline.After(f.now) {
			return false
		}
		due = append(due, t)
		return true
	})
	if len(due) == 0 {
		return
	}
	slices.SortStableFunc(due, func(a, b *fakeTimer) int { return a.deadline.Compare(b.deadline) })
	for _, t := range due {
		t.armed = false
		t.send(t.deadline)
	}
	f.notify()
}

// Timers reports how many timers are armed.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Next reports the earliest armed deadline; ok is false when no timer is armed.
func (f *Fake) Next() (deadline time.Time, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.timers {
		if !ok || t.deadline.Before(deadline) {
			deadline, ok = t.deadline, true
		}
	}
	return deadline, ok
}

// WaitTimers blocks until at least n timers are armed or ctx ends. Tests call
// it before Advance so that time moves only once the code under test is
// waiting on its timer.
func (f *Fake) WaitTimers(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		armed, changed := len(f.timers), f.changed
		f.mu.Unlock()
		if armed >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// arm schedules t; f.mu is held.
func (f *Fake) arm(t *fakeTimer, d time.Duration) {
	t.deadline = f.now.Add(d)
	if d <= 0 {
		t.send(t.deadline)
		return
	}
	t.armed = true
	f.timers = append(f.timers, t)
	f.notify()
}

// disarm unschedules t and drops any value waiting in its channel; f.mu is
// held. It reports whether t was armed.
func (f *Fake) disarm(t *fakeTimer) bool {
	select {
	case <-t.c:
	default:
	}
	if !t.armed {
		return false
	}
	t.armed = false
	f.timers = slices.DeleteFunc(f.timers, func(o *fakeTimer) bool { return o == t })
	f.notify()
	return true
}

func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

type fakeTimer struct {
	clock    *Fake
	c        chan time.Time
	deadline time.Time
	armed    bool // guarded by clock.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	return t.clock.disarm(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := t.clock.disarm(t)
	t.clock.arm(t, d)
	return was
}

// send delivers v without blocking: the channel holds one value, and a
// disarm empties it, so a full channel means an unread earlier firing.
func (t *fakeTimer) send(v time.Time) {
	select {
	case t.c <- v:
	default:
	}
}
