package plan

import (
	"fmt"
	"strings"
	"time"

	"github.com/llorch/llorch/state"
)

// Downtime kinds: what the clients of a pool see while a change is applied.
const (
	DowntimeNone        = "none"        // some replica serves throughout
	DowntimePartial     = "partial"     // fewer replicas for a while; the pool keeps serving
	DowntimeGap         = "gap"         // no replica serves for about Estimate
	DowntimeUnavailable = "unavailable" // nothing serves now; a restart brings it back in about Estimate
	DowntimeRemoved     = "removed"     // the pool stops serving for good
)

// Downtime is what a change leaves the clients of a pool without, estimated
// from how long the recorded replicas took to start (the state records when
// each engine started and when it became ready).
type Downtime struct {
	Kind string
	// Estimate is the expected gap (DowntimeGap, DowntimeUnavailable), 0
	// when no start was recorded.
	Estimate time.Duration
	// LastStart is the pool's last recorded start (spawn to ready), 0 when
	// none is recorded.
	LastStart time.Duration
	// LastStop is the pool's last recorded drain and stop, 0 when none.
	LastStop time.Duration
	Detail   string
}

// Downtime estimates what c leaves clients without; nil for a change that
// touches no serving replica (a create).
func (c *Change) Downtime() *Downtime {
	sp := c.Before
	if sp == nil || c.Action == Create || c.Action == NoOp {
		return nil
	}
	start := lastStart(sp)
	startNote := "no start recorded"
	if start > 0 {
		startNote = "last start " + roundDuration(start).String()
	}
	_, replica := SplitReplicaAddr(c.Addr)
	n := len(sp.Replicas)
	switch {
	case c.Action == Delete && replica == "":
		return &Downtime{Kind: DowntimeRemoved, LastStart: start, Detail: "the pool stops serving"}
	case c.Action == Update || c.Action == Delete:
		return &Downtime{Kind: DowntimeNone, LastStart: start, Detail: "no gap (updated in place)"}
	case c.Action == CreateThenDelete:
		return &Downtime{Kind: DowntimeNone, LastStart: start, Detail: "no gap (create_before_destroy; " + startNote + ")"}
	case c.Action == DeleteThenCreate && n > 1:
		return &Downtime{Kind: DowntimePartial, LastStart: start,
			Detail: fmt.Sprintf("one replica of %d at a time is drained and started again (drain_first; %s); the pool keeps serving", n, startNote)}
	case c.Action == DeleteThenCreate:
		on := ""
		if port := fixedPort(sp); port > 0 {
			on = fmt.Sprintf(" on :%d", port)
		}
		deadline := "the drain deadline"
		if sp.Spec != nil && sp.Spec.Drain.Deadline != "" {
			deadline = sp.Spec.Drain.Deadline
		}
		stop := lastStop(sp)
		var gap string
		switch {
		case start > 0 && stop > 0:
			gap = fmt.Sprintf("gap ≈ %s%s: drain_first drains, stops and starts the only replica (last drain and stop %s, %s)", roundDuration(stop+start), on, roundDuration(stop), startNote)
		case start > 0:
			gap = fmt.Sprintf("gap ≈ %s%s: drain_first drains, stops and starts the only replica (%s, plus draining, up to %s)", roundDuration(start), on, startNote, deadline)
		default:
			gap = fmt.Sprintf("a gap%s of one start plus draining (up to %s): drain_first drains, stops and starts the only replica", on, deadline)
		}
		return &Downtime{Kind: DowntimeGap, Estimate: stop + start, LastStart: start, LastStop: stop, Detail: gap}
	case c.Action == Restart && len(c.Replicas) < n:
		return &Downtime{Kind: DowntimePartial, LastStart: start,
			Detail: fmt.Sprintf("restart of %d of %d replicas; the pool keeps serving", len(c.Replicas), n)}
	case c.Action == Restart:
		return &Downtime{Kind: DowntimeUnavailable, Estimate: start, LastStart: start,
			Detail: fmt.Sprintf("no replica serves now; the restart takes ≈ %s (%s)", roundDuration(start), startNote)}
	}
	return nil
}

// DowntimeSummary totals the plan's downtime for its summary line:
// "none", or what each pool is without ("pool.chat unavailable ≈ 2s;
// pool.old removed"). "" when no change touches a serving replica.
//
// A plan of many pools names the first few and counts the rest: "pool.a
// unavailable ≈ 2s; pool.b unavailable ≈ 1s; and 8 more pools unavailable;
// 1000 pools removed".
func (p *Plan) DowntimeSummary() string {
	var unavailable, removed []string
	touched := false
	for _, c := range p.Changes {
		d := c.Downtime()
		if d == nil {
			continue
		}
		touched = true
		pool, _ := SplitReplicaAddr(c.Addr)
		switch d.Kind {
		case DowntimeGap, DowntimeUnavailable:
			if d.Estimate > 0 {
				unavailable = append(unavailable, fmt.Sprintf("%s unavailable ≈ %s", pool, roundDuration(d.Estimate)))
			} else {
				unavailable = append(unavailable, pool+" unavailable for a while")
			}
		case DowntimeRemoved:
			removed = append(removed, pool+" removed")
		}
	}
	if !touched {
		return ""
	}
	var parts []string
	if len(unavailable) > summaryNames {
		parts = append(unavailable[:summaryNames:summaryNames], fmt.Sprintf("and %d more pools unavailable", len(unavailable)-summaryNames))
	} else {
		parts = unavailable
	}
	if len(removed) > summaryNames {
		parts = append(parts, fmt.Sprintf("%d pools removed", len(removed)))
	} else {
		parts = append(parts, removed...)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// summaryNames is how many pools the Downtime line names of each kind.
const summaryNames = 3

// lastStart is how long the pool's last recorded start took from spawn to
// ready (state keeps a short history), or, for a state written before the
// history, the longest its recorded replicas took.
func lastStart(sp *state.Pool) time.Duration {
	if t := sp.Timings; t != nil && len(t.StartsMS) > 0 {
		return time.Duration(t.StartsMS[len(t.StartsMS)-1]) * time.Millisecond
	}
	var longest time.Duration
	for _, r := range sp.Replicas {
		if r.StartedAt.IsZero() || r.ReadyAt.IsZero() {
			continue
		}
		if d := r.ReadyAt.Sub(r.StartedAt); d > longest {
			longest = d
		}
	}
	return longest
}

// lastStop is how long the pool's last recorded stop of a serving
// replica took, draining included; 0 when none is recorded.
func lastStop(sp *state.Pool) time.Duration {
	if t := sp.Timings; t != nil && len(t.StopsMS) > 0 {
		return time.Duration(t.StopsMS[len(t.StopsMS)-1]) * time.Millisecond
	}
	return 0
}

func fixedPort(sp *state.Pool) int {
	if sp.Spec != nil && sp.Spec.Port > 0 {
		return sp.Spec.Port
	}
	return 0
}

// roundDuration keeps two significant figures: "1.9s", "140ms".
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}
