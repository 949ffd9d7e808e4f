package plan

import (
	"context"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/fit"
	"github.com/llorch/llorch/state"
)

// DevicesFunc learns the machine's devices for the memory fit; override
// is the configuration's devices {} block (nil when absent).
type DevicesFunc func(ctx context.Context, override *config.Devices) *fit.Machine

// checkFit adds up the providers' memory estimates of every configured
// pool (targeted or not: untargeted pools keep running) per device of the
// machine. A device the set does not fit is an error at a pool's block,
// or a warning when its consumers all say fit = "warn"; the report travels
// in the error's Extra so that the CLI can show the table with it.
func (pl *Planner) checkFit(ctx context.Context, cfg *config.Config, desired []*Desired, prior *state.State, obs Observations) (*fit.Report, hcl.Diagnostics) {
	if pl.Devices == nil || len(desired) == 0 {
		return nil, nil
	}
	m := pl.Devices(ctx, cfg.Devices)
	pools := make([]fit.Pool, 0, len(desired))
	for _, d := range desired {
		p := fit.Pool{
			Addr: d.Addr, Replicas: d.Pool.Replicas, Devices: d.Pool.Devices, Mode: d.Pool.Fit,
			Range: d.Pool.DeclRange, DevicesRange: d.Pool.Range("devices"),
			Running: running(d.Addr, prior, obs),
		}
		if d.Planned != nil {
			p.Estimate, p.Unknown = d.Planned.Memory, d.Planned.MemoryUnknown
		}
		if p.Estimate == nil && p.Unknown == "" {
			p.Unknown = "the provider gives no memory estimate"
		}
		pools = append(pools, p)
	}
	rep := fit.Check(m, pools)
	diags := rep.Diags
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			d.Extra = rep
		}
	}
	return rep, diags
}

// running counts the replicas of addr running now: alive when refreshed,
// recorded as starting or ready when not.
func running(addr string, prior *state.State, obs Observations) int {
	if prior == nil || prior.Pools[addr] == nil {
		return 0
	}
	n := 0
	for _, r := range prior.Pools[addr].Replicas {
		o, ok := obs[ReplicaAddr(addr, r.ID)]
		switch {
		case ok && o.Alive:
			n++
		case !ok && (r.Status == state.StatusReady || r.Status == state.StatusStarting):
			n++
		}
	}
	return n
}

// FitReport returns the fit report a diagnostic carries (see checkFit),
// nil when it carries none.
func FitReport(d *hcl.Diagnostic) *fit.Report {
	r, _ := d.Extra.(*fit.Report)
	return r
}
