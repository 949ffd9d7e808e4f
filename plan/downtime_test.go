package plan

import (
	"testing"
	"time"

	"github.com/llorch/llorch/state"
)

func TestDowntimeEstimates(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	started := func(id string, took time.Duration) *state.Replica {
		return &state.Replica{ID: id, StartedAt: t0, ReadyAt: t0.Add(took)}
	}
	pool := func(port int, reps ...*state.Replica) *state.Pool {
		return &state.Pool{Spec: &state.Spec{Port: port, Drain: state.DrainSpec{Deadline: "30s"}}, Replicas: reps}
	}
	one := pool(8080, started("r0", 1940*time.Millisecond))
	two := pool(0, started("r0", 1200*time.Millisecond), started("r1", 2100*time.Millisecond))
	// A pool whose history says more than its replicas: the last start
	// took 2.4 s (an earlier one 900 ms), the last drain and stop 600 ms.
	timed := pool(8080, started("r0", 1940*time.Millisecond))
	timed.Timings = &state.Timings{StartsMS: []int{900, 2400}, StopsMS: []int{300, 600}}
	tests := []struct {
		name    string
		change  *Change
		kind    string
		detail  string
		summary string
	}{
		{name: "create", change: &Change{Addr: "pool.chat", Action: Create}},
		{name: "create_before_destroy", change: &Change{Addr: "pool.chat", Action: CreateThenDelete, Before: one},
			kind: DowntimeNone, detail: "no gap (create_before_destroy; last start 1.9s)", summary: "none"},
		{name: "drain_first, one replica", change: &Change{Addr: "pool.chat", Action: DeleteThenCreate, Before: one},
			kind: DowntimeGap, detail: "gap ≈ 1.9s on :8080: drain_first drains, stops and starts the only replica (last start 1.9s, plus draining, up to 30s)",
			summary: "pool.chat unavailable ≈ 1.9s"},
		{name: "drain_first, with a start and stop history", change: &Change{Addr: "pool.chat", Action: DeleteThenCreate, Before: timed},
			kind: DowntimeGap, detail: "gap ≈ 3s on :8080: drain_first drains, stops and starts the only replica (last drain and stop 600ms, last start 2.4s)",
			summary: "pool.chat unavailable ≈ 3s"},
		{name: "create_before_destroy, with a history", change: &Change{Addr: "pool.chat", Action: CreateThenDelete, Before: timed},
			kind: DowntimeNone, detail: "no gap (create_before_destroy; last start 2.4s)", summary: "none"},
		{name: "drain_first, two replicas", change: &Change{Addr: "pool.chat", Action: DeleteThenCreate, Before: two},
			kind: DowntimePartial, detail: "one replica of 2 at a time is drained and started again (drain_first; last start 2.1s); the pool keeps serving", summary: "none"},
		{name: "restart of one of two", change: &Change{Addr: "pool.chat/r1", Action: Restart, Before: two, Replicas: []string{"r1"}},
			kind: DowntimePartial, detail: "restart of 1 of 2 replicas; the pool keeps serving", summary: "none"},
		{name: "restart of all", change: &Change{Addr: "pool.chat", Action: Restart, Before: one, Replicas: []string{"r0"}},
			kind: DowntimeUnavailable, detail: "no replica serves now; the restart takes ≈ 1.9s (last start 1.9s)", summary: "pool.chat unavailable ≈ 1.9s"},
		{name: "destroy", change: &Change{Addr: "pool.chat", Action: Delete, Before: one},
			kind: DowntimeRemoved, detail: "the pool stops serving", summary: "pool.chat removed"},
		{name: "update in place", change: &Change{Addr: "pool.chat", Action: Update, Before: two},
			kind: DowntimeNone, detail: "no gap (updated in place)", summary: "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.change.Downtime()
			if tc.kind == "" {
				if d != nil {
					t.Fatalf("Downtime = %+v, want none for a create", d)
				}
				return
			}
			if d == nil || d.Kind != tc.kind || d.Detail != tc.detail {
				t.Fatalf("Downtime = %+v\nwant kind %s, detail %q", d, tc.kind, tc.detail)
			}
			if got := (&Plan{Changes: []*Change{tc.change}}).DowntimeSummary(); got != tc.summary {
				t.Errorf("summary %q, want %q", got, tc.summary)
			}
		})
	}
}

func TestDowntimeSummaryCountsWhatItDoesNotName(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	p := &Plan{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		sp := &state.Pool{Spec: &state.Spec{}, Replicas: []*state.Replica{{ID: "r0", StartedAt: t0, ReadyAt: t0.Add(time.Second)}}}
		p.Changes = append(p.Changes,
			&Change{Addr: "pool." + name, Action: Restart, Before: sp, Replicas: []string{"r0"}},
			&Change{Addr: "pool.old" + name, Action: Delete, Before: sp})
	}
	want := "pool.a unavailable ≈ 1s; pool.b unavailable ≈ 1s; pool.c unavailable ≈ 1s; and 2 more pools unavailable; 5 pools removed"
	if got := p.DowntimeSummary(); got != want {
		t.Errorf("DowntimeSummary = %q\nwant %q", got, want)
	}
}
