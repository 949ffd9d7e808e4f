package plan

import (
	"context"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/fit"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// FormatVersion is the version of saved plans and of `plan -json` output.
const FormatVersion = 1

// Action is what a Change does. The values are the symbols printed.
type Action rune

const (
	NoOp             Action = 0
	Create           Action = '+'
	Update           Action = '~'
	CreateThenDelete Action = '±' // replace, create_before_destroy (printed "+/-")
	DeleteThenCreate Action = '∓' // replace, drain_first (printed "-/+")
	Delete           Action = '-'
	Restart          Action = '↻' // drift: recorded running, observed dead or failed
)

// IsReplace reports whether a is one of the two replace actions.
func (a Action) IsReplace() bool { return a == CreateThenDelete || a == DeleteThenCreate }

// Reason says why a Change has its Action, when that is not obvious.
type Reason string

const (
	ReasonNone              Reason = ""
	ReplaceBecauseChanged   Reason = "replace_because_cannot_update" // an attribute that forces replacement changed
	ReplaceByRequest        Reason = "replace_by_request"            // -replace=ADDR
	ReplaceBecauseDrift     Reason = "replace_because_drift"         // binary or model changed on disk
	ReplaceBecausePortMoved Reason = "replace_because_port_moved"    // a replica listens off its configured port
	RestartBecauseExited    Reason = "restart_because_exited"        // engine or supervisor gone
	RestartBecauseFailed    Reason = "restart_because_failed"        // circuit breaker open, start failed
	RestartBecauseDrained   Reason = "restart_because_drained"       // stopped by `llorch drain`
	DeleteBecauseNoConfig   Reason = "delete_because_no_config"      // pool removed from config
	DeleteBecauseCountIndex Reason = "delete_because_count_index"    // replica beyond replicas
	DeleteBecauseDestroy    Reason = "delete_because_destroy"        // -destroy
)

// Desired is one pool instance as configured, evaluated and planned by its
// provider: everything Diff needs about the future.
type Desired struct {
	Addr     string
	Pool     *config.Pool
	Spec     *state.Spec // normalized, sensitive values hashed: what state will record
	SpecHash string
	// ProviderConfig is the pool's provider block decoded against
	// ProviderSchema (sensitive values intact: only for providers).
	ProviderConfig cty.Value
	ProviderSchema *providers.Block
	Planned        *providers.PlannedPool
	// Sensitive lists the attribute paths ("env.HF_TOKEN",
	// "llamacpp.api_key") whose values Spec holds only as "sha256:…" and
	// that output shows as (sensitive value). Sorted.
	Sensitive []string
	// secrets are the raw values Spec holds hashed, and the values of the
	// configuration's sensitive variables: what Scrub hides.
	secrets []string
}

// Scrub replaces every sensitive value of the pool in s (a provider's
// progress message or error, an engine argument) by "(sensitive value)",
// so that what apply prints or records never holds one.
func (d *Desired) Scrub(s string) string { return scrub(s, d.secrets) }

// AttrDiff is one attribute's change, for rendering.
type AttrDiff struct {
	Path      string // "model.ref", "llamacpp.n_gpu_layers", "health.interval"
	Before    any    // JSON-able value; nil when absent
	After     any
	Sensitive bool // render as (sensitive value)
	Forces    bool // "# forces replacement"
}

// Change is one planned change to a pool ("pool.chat") or to one replica
// ("pool.chat/r1").
type Change struct {
	Addr   string
	Action Action
	Reason Reason
	Detail string      // user-facing reason for drift and restarts ("engine exited with status 134")
	Before *state.Pool // nil on Create
	After  *Desired    // nil on Delete
	// Attrs are the attributes that change. On Create they are every
	// attribute the pool will have, on Delete every attribute it had.
	Attrs []AttrDiff
	// Unchanged are the attributes of an update or replace that keep
	// their value; output counts them ("# (9 unchanged attributes hidden)").
	Unchanged []AttrDiff
	ForcedBy  []string // attribute paths that force replacement
	// Replicas lists the replica ids this change touches: created, deleted,
	// restarted or replaced.
	Replicas []string
}

// Drift is a difference between recorded and observed state that the user
// did not ask for ("Objects have changed outside of llorch").
type Drift struct {
	Addr   string // "pool.chat/r0"
	Status string // observed status
	Reason string // "process 4242 is not running", "model file changed on disk"
	Cause  string // why the engine ended (model_load_failed, out_of_memory, …), when known
}

// Plan is the result of Diff. It knows the state it was made against.
type Plan struct {
	FormatVersion int
	Lineage       string // of the state it was made against
	Serial        uint64 // apply refuses a mismatch: "Saved plan is stale"
	ConfigHash    string
	Destroy       bool
	Changes       []*Change // sorted by Addr: deterministic output
	Drift         []*Drift
	// Prior is the state the plan was made against, as handed to the
	// Planner; nothing may modify it.
	Prior *state.State `json:"-"`
	// Desired holds every configured pool instance, by address (also those
	// without changes), so apply can write state for in-place updates.
	Desired map[string]*Desired `json:"-"`
	// Warnings from providers (ctx above trained length) and from the
	// memory fit.
	Warnings []string
	// Fit is the memory fit of the configured pools on the machine's
	// devices; nil when there was no check (destroy, a replayed plan).
	Fit *fit.Report `json:"-"`
	// LlorchVersion is the version of llorch that made the plan.
	LlorchVersion string
	// Options and Observations are the inputs Diff used besides the
	// configuration and the state: a saved plan keeps them (and each
	// Desired's Planned) so that applying it replays exactly this plan.
	Options      Options
	Observations Observations
	// Unknown lists the supervisors running in run directories that no
	// replica of the state names (the state file was lost, or an apply was
	// killed before it recorded them). Apply stops them before anything
	// else. A saved plan does not keep them: apply looks again.
	Unknown []Unknown `json:"-"`
}

// Unknown is a running supervisor that the state does not know.
type Unknown struct {
	RunDir        string
	Addr          string // the replica address its spec names; "" when unreadable
	SupervisorPID int
	PID           int // engine pid, 0 when not running
	Status        string
	Port          int
}

// UnknownFinder is implemented by a Refresher that can also find running
// supervisors the state does not know.
type UnknownFinder interface {
	Unknown(ctx context.Context, prior *state.State) ([]Unknown, error)
}

// Summary counts the plan's changes: Add = creates + replaces, Change =
// updates, Destroy = deletes + replaces, Restart = restarts.
func (p *Plan) Summary() Summary {
	var s Summary
	for _, c := range p.Changes {
		switch {
		case c.Action == Create:
			s.Add++
		case c.Action == Update:
			s.Change++
		case c.Action.IsReplace():
			s.Add++
			s.Destroy++
		case c.Action == Delete:
			s.Destroy++
		case c.Action == Restart:
			s.Restart++
		}
	}
	s.Unknown = len(p.Unknown)
	return s
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Changes) == 0 && len(p.Unknown) == 0 }

// Planned returns each configured pool's PlanPool result by address, as a
// saved plan records it.
func (p *Plan) Planned() map[string]*providers.PlannedPool {
	out := make(map[string]*providers.PlannedPool, len(p.Desired))
	for addr, d := range p.Desired {
		if d.Planned != nil {
			out[addr] = d.Planned
		}
	}
	return out
}

// Summary counts changes the way the human output's last line does.
type Summary struct {
	Add, Change, Destroy, Restart int
	Unknown                       int // running supervisors the state does not know, to stop
}

// String is the summary as the plan's last line says it, without "Plan: ".
func (s Summary) String() string {
	line := fmt.Sprintf("%d to add, %d to change, %d to destroy", s.Add, s.Change, s.Destroy)
	if s.Restart > 0 {
		line += fmt.Sprintf(", %d to restart", s.Restart)
	}
	switch {
	case s.Unknown == 1:
		line += ", 1 supervisor the state does not know to stop"
	case s.Unknown > 1:
		line += fmt.Sprintf(", %d supervisors the state does not know to stop", s.Unknown)
	}
	return line
}

// Options select what a plan covers.
type Options struct {
	Targets []string // -target=ADDR; empty = everything
	Replace []string // -replace=ADDR (pool or replica)
	Destroy bool     // -destroy
	Refresh bool     // false with -refresh=false
}

// Observed is one replica's live status, as refresh saw it.
type Observed struct {
	Status string // a state.Status* value; "" when unknown
	Alive  bool   // engine process running
	PID    int
	Reason string // why it is not ready ("process 4242 exited", "circuit breaker open: …")
	// Cause classifies the engine's last end ("model_load_failed",
	// "out_of_memory", "bad_argument", "port_in_use", "crashed"), when the
	// supervisor knows it.
	Cause string `json:",omitempty"`
	// BinaryChanged and ModelChanged report that the file on disk may not be
	// the one the replica was started from (size or mtime differ from
	// Prepared, or it is gone). Diff then compares the digest the provider
	// planned with the recorded one: only other bytes are drift.
	BinaryChanged bool
	ModelChanged  bool
	Restarts      int
	CheckedAt     time.Time
}

// Observations maps a replica address ("pool.chat/r0") to what refresh saw.
type Observations map[string]Observed

// Refresher reads a replica's live status. The supervisor implements it;
// tests fake it. It must only read pool and r: Planner.Plan refreshes while
// it builds the desired pools from the same state.
type Refresher interface {
	Refresh(ctx context.Context, pool *state.Pool, r *state.Replica) (Observed, error)
}
