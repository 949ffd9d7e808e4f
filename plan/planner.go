package plan

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/parallel"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// DefaultParallelism bounds concurrent provider and refresh calls when
// Planner.Parallelism is 0.
const DefaultParallelism = 16

// Planner gathers Diff's inputs: it decodes provider blocks against each
// provider's schema, calls ValidatePool and PlanPool, and refreshes replicas
// through Refresher. A Planner configures each provider once (with the
// provider block of the first configuration it is given) and may be used
// for one command; it must not be copied after first use.
type Planner struct {
	Providers providers.Resolver
	Refresher Refresher // nil: no refresh
	// Parallelism bounds concurrent provider and refresh calls; 0 means
	// DefaultParallelism.
	Parallelism int
	// LlorchVersion is passed to providers' Configure and recorded in plans.
	LlorchVersion string
	// CacheDir is llorch's cache directory, passed to providers'
	// Configure (providers.ConfigureRequest.CacheDir); "" for none. The
	// configuration directory passed with it is the Config's Dir.
	CacheDir string
	// ProvidersDone, when set, is called once Plan has asked the providers
	// all it will, before it waits for the refresh and diffs: a caller
	// that needs them no more (plan, unlike apply) can stop them while
	// the plan is finished.
	ProvidersDone func()
	// Pins are the lock file's engine and model pins, and LockMode what
	// a plan does with what they do not pin as planned (see checkPins).
	// A provider runs an engine binary while planning only when it is
	// pinned.
	Pins     *providers.Pins
	LockMode providers.LockMode
	// Devices learns the machine's devices for the memory fit (plan/fit);
	// nil: no fit check.
	Devices DevicesFunc

	mu      sync.Mutex
	entries map[string]*providerEntry
}

// providerEntry is one provider as the Planner resolved and configured it.
type providerEntry struct {
	once       sync.Once
	prov       providers.Provider
	schema     *providers.Schema
	pool       *blockSchema    // schema.Pool, prepared for a thousand pools
	resolveErr error           // the resolver could not start it
	resolved   *hcl.Diagnostic // resolveErr as a diagnostic about the provider block
	diags      hcl.Diagnostics // schema, decode and Configure diagnostics
	// validated and planned share ValidatePool and PlanPool answers among
	// pools of the same shape (see memo.go).
	validated callMemo[struct{}]
	planned   callMemo[*providers.PlannedPool]
}

func (pl *Planner) entry(name string) *providerEntry {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.entries == nil {
		pl.entries = map[string]*providerEntry{}
	}
	e, ok := pl.entries[name]
	if !ok {
		e = &providerEntry{}
		pl.entries[name] = e
	}
	return e
}

// Forget drops the named provider, so the next Provider call resolves and
// configures it again: after its plugin process died, the resolver starts
// a fresh one, which must be configured before use.
func (pl *Planner) Forget(name string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	delete(pl.entries, name)
}

// Provider returns the named provider, configured once per Planner with the
// configuration's provider block (decoded against Schema.Provider; a null
// value of the block's type when the configuration has none), and its schema.
// The provider is nil when it could not be started or configured.
func (pl *Planner) Provider(ctx context.Context, cfg *config.Config, name string) (providers.Provider, *providers.Schema, hcl.Diagnostics) {
	e := pl.provider(ctx, cfg, name)
	diags := slices.Clone(e.diags)
	if e.resolved != nil {
		diags = append(diags, e.resolved)
	}
	if diags.HasErrors() {
		return nil, e.schema, diags
	}
	return e.prov, e.schema, diags
}

func (pl *Planner) provider(ctx context.Context, cfg *config.Config, name string) *providerEntry {
	e := pl.entry(name)
	e.once.Do(func() { pl.startProvider(ctx, cfg, name, e) })
	return e
}

func (pl *Planner) startProvider(ctx context.Context, cfg *config.Config, name string, e *providerEntry) {
	var block *config.ProviderBlock
	if cfg != nil {
		block = cfg.Providers[name]
	}
	var blockRange *hcl.Range
	if block != nil {
		blockRange = block.DeclRange.Ptr()
	}
	if pl.Providers == nil {
		e.resolveErr = fmt.Errorf("no provider resolver is set up")
	} else {
		e.prov, e.resolveErr = pl.Providers.Provider(ctx, name)
	}
	if e.resolveErr != nil {
		e.resolved = &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to load provider",
			Detail: fmt.Sprintf("The provider %q could not be started: %s. Run \"llorch providers\" to list the providers llorch can find.",
				name, e.resolveErr),
			Subject: blockRange,
		}
		return
	}

	schema, sd := e.prov.GetSchema(ctx)
	e.diags = append(e.diags, sourceDiagnostics(sd, blockRange, nil)...)
	if sd.HasErrors() {
		return
	}
	if schema == nil {
		e.diags = append(e.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid provider schema",
			Detail:   fmt.Sprintf("The provider %q returned no schema. This is a bug in the provider; report it to its authors.", name),
			Subject:  blockRange,
		})
		return
	}
	e.schema = schema
	e.pool = newBlockSchema(schema.Pool)

	val := cty.NullVal(schema.Provider.ImpliedType())
	var secrets []string
	if block != nil {
		v, dd := hcldec.Decode(block.Body, schema.Provider.DecoderSpec(), block.EvalCtx)
		e.diags = append(e.diags, hideValues(dd, block.EvalCtx)...)
		if dd.HasErrors() {
			return
		}
		v, marks := v.UnmarkDeepWithPaths()
		_, _, secrets, _ = redactProvider(v, marks, newBlockSchema(schema.Provider))
		val = v
	}
	req := providers.ConfigureRequest{Config: val, LlorchVersion: pl.LlorchVersion, CacheDir: pl.CacheDir}
	if cfg != nil {
		// Absolute, so that a plugin process resolves paths as llorch does
		// whatever its own working directory.
		if dir, err := filepath.Abs(cfg.Dir); err == nil {
			req.ConfigDir = dir
		}
	}
	cd := e.prov.Configure(ctx, req)
	var body hcl.Body
	if block != nil {
		body = block.Body
	}
	e.diags = append(e.diags, sourceDiagnostics(cd, blockRange, body, secrets...)...)
}

// sourceDiagnostics maps provider diagnostics about the provider block:
// a path points into body when it can be found there, else at rng.
func sourceDiagnostics(ds providers.Diagnostics, rng *hcl.Range, body hcl.Body, secrets ...string) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		subject := rng
		if body != nil && len(d.Attribute) > 0 {
			if r, ok := bodyPathRange(body, d.Attribute); ok {
				subject = r.Ptr()
			}
		}
		out = append(out, &hcl.Diagnostic{
			Severity: severity(d.Severity),
			Summary:  scrub(d.Summary, secrets),
			Detail:   scrub(d.Detail, secrets),
			Subject:  subject,
		})
	}
	return out
}

// hideValues drops the expression and evaluation context from decode
// diagnostics when the context holds values of sensitive variables, so no
// renderer can print them next to the source snippet.
func hideValues(diags hcl.Diagnostics, ctx *hcl.EvalContext) hcl.Diagnostics {
	if len(diags) == 0 || !hasMarks(ctx) {
		return diags
	}
	out := make(hcl.Diagnostics, len(diags))
	for i, d := range diags {
		c := *d
		c.Expression, c.EvalContext = nil, nil
		out[i] = &c
	}
	return out
}

func hasMarks(ctx *hcl.EvalContext) bool {
	for ; ctx != nil; ctx = ctx.Parent() {
		for _, v := range ctx.Variables {
			if v.ContainsMarked() {
				return true
			}
		}
	}
	return false
}

// mode says how much of the provider a pool needs.
type mode int

const (
	modeValidate mode = iota // decode, ValidatePool
	modePlan                 // decode, ValidatePool, PlanPool
	modeReplay               // decode only; PlanPool's result comes from a saved plan
)

// Validate decodes every provider block and every pool-level provider block
// against the providers' schemas and calls ValidatePool on every pool. It
// neither plans nor refreshes: it is `llorch validate`.
func (pl *Planner) Validate(ctx context.Context, cfg *config.Config) hcl.Diagnostics {
	_, diags := pl.desired(ctx, cfg, nil, modeValidate, nil)
	return diags
}

// Desired builds the Desired of every pool instance of cfg, sorted by
// address: it decodes each pool's provider block, calls ValidatePool and
// PlanPool (concurrently, at most Parallelism at a time), and normalizes the
// spec. prior supplies each pool's previously prepared engine to PlanPool.
// Pools with errors are left out and reported in the diagnostics.
func (pl *Planner) Desired(ctx context.Context, cfg *config.Config, prior *state.State) ([]*Desired, hcl.Diagnostics) {
	return pl.desired(ctx, cfg, prior, modePlan, nil)
}

func (pl *Planner) desired(ctx context.Context, cfg *config.Config, prior *state.State, m mode, saved map[string]*providers.PlannedPool) ([]*Desired, hcl.Diagnostics) {
	if cfg == nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "No configuration",
			Detail: "There is no configuration to plan. This is a bug in llorch."}}
	}
	var diags hcl.Diagnostics

	// Providers first, one per engine, so that their own problems are
	// reported once rather than once per pool.
	names := map[string]bool{}
	for _, p := range cfg.Pools {
		names[p.Engine] = true
	}
	if m == modeValidate {
		for name := range cfg.Providers {
			names[name] = true
		}
	}
	engines := providers.SortedKeys(names)
	entries := make([]*providerEntry, len(engines))
	err := parallel.For(ctx, len(engines), pl.parallelism(), func(i int) {
		entries[i] = pl.provider(ctx, cfg, engines[i])
	})
	if err != nil {
		return nil, append(diags, cancelled(err))
	}
	byEngine := make(map[string]*providerEntry, len(engines))
	for i, e := range entries {
		byEngine[engines[i]] = e
		diags = append(diags, e.diags...)
		if e.resolved != nil && cfg.Providers[engines[i]] != nil {
			// A provider block for a provider nobody can start: say so there
			// too, as pools may not use it.
			if !usedByPool(cfg, engines[i]) {
				diags = append(diags, e.resolved)
			}
		}
	}

	results := make([]*Desired, len(cfg.Pools))
	poolDiags := make([]hcl.Diagnostics, len(cfg.Pools))
	err = parallel.For(ctx, len(cfg.Pools), pl.parallelism(), func(i int) {
		p := cfg.Pools[i]
		var sp *state.Pool
		if prior != nil {
			sp = prior.Pools[p.Addr]
		}
		results[i], poolDiags[i] = pl.desiredPool(ctx, p, byEngine[p.Engine], sp, m, saved)
	})
	for _, d := range poolDiags {
		diags = append(diags, d...)
	}
	if err != nil {
		return nil, append(diags, cancelled(err))
	}
	out := make([]*Desired, 0, len(results))
	vars := sensitiveValues(cfg)
	for _, d := range results {
		if d != nil {
			if len(vars) > 0 {
				d.secrets = append(slices.Clip(d.secrets), vars...)
			}
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *Desired) int { return CompareAddr(a.Addr, b.Addr) })
	if m != modeValidate {
		diags = append(diags, pl.checkPins(out)...)
	}
	return out, diags
}

func usedByPool(cfg *config.Config, engine string) bool {
	for _, p := range cfg.Pools {
		if p.Engine == engine {
			return true
		}
	}
	return false
}

func cancelled(err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Planning interrupted",
		Detail:   fmt.Sprintf("Planning stopped before it was complete (%s); no plan was made.", err),
	}
}

// desiredPool evaluates one pool instance; it returns nil when the pool has
// errors.
func (pl *Planner) desiredPool(ctx context.Context, p *config.Pool, e *providerEntry, sp *state.Pool, m mode, saved map[string]*providers.PlannedPool) (*Desired, hcl.Diagnostics) {
	if e == nil || e.resolveErr != nil {
		detail := fmt.Sprintf("%s uses engine %q, but its provider could not be started", p.Addr, p.Engine)
		if e != nil {
			detail += ": " + e.resolveErr.Error()
		}
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to load provider",
			Detail:   detail + ". Run \"llorch providers\" to list the providers llorch can find.",
			Subject:  p.Range("engine").Ptr(),
		}}
	}
	if e.schema == nil || e.diags.HasErrors() {
		return nil, nil // reported once with the provider
	}
	if m == modeValidate && p.Incomplete {
		// An attribute depends on a variable validate has no value for:
		// config checked what it could; the provider would take the
		// unknown for unset.
		return nil, nil
	}
	var (
		diags hcl.Diagnostics
		val   cty.Value
		bs    builtSpec
		err   error
	)
	if absent := e.pool.absent(); p.ProviderBody == nil && absent != nil {
		// No block, as in most pools: what an empty one decodes to.
		val = absent.val
		bs, err = buildSpecWith(p, slices.Clone(absent.raw), nil, nil)
	} else {
		body := p.ProviderBody
		if body == nil {
			// Decode an empty block whose "missing argument" errors point
			// at the pool.
			body = &hclsyntax.Body{SrcRange: p.DeclRange, EndRange: p.DeclRange}
		}
		var dd hcl.Diagnostics
		val, dd = hcldec.Decode(body, e.pool.spec, p.EvalCtx)
		diags = append(diags, hideValues(dd, p.EvalCtx)...)
		if dd.HasErrors() {
			return nil, diags
		}
		if m == modeValidate && !val.IsWhollyKnown() {
			// A required variable validate has no value for: the block
			// matches the schema; what the provider would say of the
			// value waits for plan.
			return nil, diags
		}
		var marks []cty.PathValueMarks
		val, marks = val.UnmarkDeepWithPaths()
		bs, err = buildSpec(p, val, marks, e.pool)
	}
	if err != nil {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid provider block",
			Detail:   fmt.Sprintf("The %s block of %s cannot be recorded: %s.", p.Engine, p.Addr, err),
			Subject:  p.Range(p.Engine).Ptr(),
		})
	}
	ps := PoolSpec(p)

	var planned *providers.PlannedPool
	switch m {
	case modeReplay:
		planned = saved[p.Addr]
		if planned == nil {
			return nil, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Saved plan does not match the configuration",
				Detail:   fmt.Sprintf("The saved plan has nothing planned for %s. Run llorch plan again.", p.Addr),
				Subject:  p.DeclRange.Ptr(),
			})
		}
	default:
		key := shapeKey(p.Engine, ps, bs.spec.Provider, "")
		_, vd := e.validated.do(key, func() (struct{}, providers.Diagnostics) {
			return struct{}{}, e.prov.ValidatePool(ctx, providers.ValidatePoolRequest{Pool: ps, Config: val})
		})
		diags = append(diags, poolDiagnostics(vd, p, e.schema.Pool, bs.secrets)...)
		if vd.HasErrors() || m == modeValidate {
			return nil, diags
		}
		prior := priorEngine(p.ID, sp)
		priorVersion := ""
		if prior != nil {
			priorVersion = prior.EngineVersion + "\x00" + prior.BinaryPath + "\x00" + prior.BinarySHA256 + "\x00" + prior.ModelPath + "\x00" + prior.ModelSHA256
		}
		pin, _ := pl.Pins.Engine(p.Engine)
		if pin.SHA256 != "" {
			priorVersion += "\x00" + pin.SHA256 // answers differ with the pin
		}
		pp, pd := e.planned.do(shapeKey(p.Engine, ps, bs.spec.Provider, priorVersion), func() (*providers.PlannedPool, providers.Diagnostics) {
			return e.prov.PlanPool(ctx, providers.PlanPoolRequest{Pool: ps, Config: val, Prior: prior, PinnedBinarySHA256: pin.SHA256})
		})
		diags = append(diags, poolDiagnostics(pd, p, e.schema.Pool, bs.secrets)...)
		if pd.HasErrors() {
			return nil, diags
		}
		planned = &providers.PlannedPool{}
		if pp != nil {
			// A private copy: the answer may be shared with other pools.
			*planned = *pp
			planned.RequiresReplace = slices.Clone(pp.RequiresReplace)
			if pp.Model != nil {
				m := *pp.Model
				planned.Model = &m
			}
		}
	}
	return &Desired{
		Addr:           p.Addr,
		Pool:           p,
		Spec:           bs.spec,
		SpecHash:       bs.hash,
		ProviderConfig: val,
		ProviderSchema: e.schema.Pool,
		Planned:        planned,
		Sensitive:      bs.sensitive,
		secrets:        bs.secrets,
	}, diags
}

// Refresh asks Refresher about every replica recorded in prior,
// concurrently. A replica that cannot be asked becomes a warning and gets no
// observation, so the plan treats it as recorded.
func (pl *Planner) Refresh(ctx context.Context, prior *state.State) (Observations, hcl.Diagnostics) {
	if pl.Refresher == nil || prior == nil {
		return Observations{}, nil
	}
	type job struct {
		addr string
		pool *state.Pool
		r    *state.Replica
	}
	var jobs []job
	for _, addr := range prior.Addrs() {
		sp := prior.Pools[addr]
		for _, r := range sp.Replicas {
			jobs = append(jobs, job{ReplicaAddr(addr, r.ID), sp, r})
		}
	}
	seen := make([]Observed, len(jobs))
	errs := make([]error, len(jobs))
	err := parallel.For(ctx, len(jobs), pl.parallelism(), func(i int) {
		seen[i], errs[i] = pl.Refresher.Refresh(ctx, jobs[i].pool, jobs[i].r)
	})
	if err != nil {
		return nil, hcl.Diagnostics{cancelled(err)}
	}
	obs := make(Observations, len(jobs))
	var diags hcl.Diagnostics
	for i, j := range jobs {
		if errs[i] != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Failed to refresh replica",
				Detail: fmt.Sprintf("llorch could not read the live status of %s: %s. The plan assumes it is as recorded; run \"llorch status\" to look at it.",
					j.addr, errs[i]),
			})
			continue
		}
		obs[j.addr] = seen[i]
	}
	return obs, diags
}

// Plan builds the desired pools, refreshes the recorded replicas (unless
// opts.Refresh is false or the plan destroys everything) and diffs them
// against prior. It returns nil when the diagnostics hold an error.
//
// The Plan keeps prior (Prior, each Change's Before) without copying it,
// so the caller must not modify prior afterwards: a State from
// state.Store.Read is the caller's alone and can be handed over as it is.
//
// Refresh needs only prior, so it runs while the desired pools are built:
// one waits on supervisors' files and /proc, the other mostly on providers.
// When building fails, the refresh is stopped and its findings dropped.
func (pl *Planner) Plan(ctx context.Context, cfg *config.Config, prior *state.State, opts Options) (*Plan, hcl.Diagnostics) {
	if prior == nil {
		prior = state.New("")
	}
	var (
		obs       = Observations{}
		refreshed hcl.Diagnostics
		refreshWG sync.WaitGroup
	)
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	defer stopRefresh()
	if opts.Refresh && !opts.Destroy && pl.Refresher != nil {
		refreshWG.Go(func() {
			var o Observations
			if o, refreshed = pl.Refresh(refreshCtx, prior); o != nil {
				obs = o
			}
		})
	}
	var (
		unknown     []Unknown
		unknownDiag hcl.Diagnostics
	)
	if finder, ok := pl.Refresher.(UnknownFinder); ok && opts.Refresh {
		refreshWG.Go(func() {
			var err error
			if unknown, err = finder.Unknown(refreshCtx, prior); err != nil {
				unknownDiag = hcl.Diagnostics{{
					Severity: hcl.DiagWarning,
					Summary:  "Failed to look for supervisors the state does not know",
					Detail:   err.Error() + ". Apply looks again before it changes anything.",
				}}
			}
		})
	}

	var (
		desired []*Desired
		diags   hcl.Diagnostics
	)
	// Destroying needs nothing from the providers: it must work even when
	// an engine binary or a model is gone, or a plugin no longer starts.
	if !opts.Destroy {
		desired, diags = pl.Desired(ctx, cfg, prior)
		if pl.ProvidersDone != nil {
			pl.ProvidersDone()
		}
		if diags.HasErrors() {
			stopRefresh()
			refreshWG.Wait()
			return nil, diags
		}
	}
	refreshWG.Wait()
	diags = append(diags, refreshed...)
	diags = append(diags, unknownDiag...)
	if refreshed.HasErrors() {
		return nil, diags
	}
	p, dd := Diff(desired, prior, obs, opts)
	diags = append(diags, dd...)
	if dd.HasErrors() {
		return nil, diags
	}
	if !opts.Destroy {
		var fd hcl.Diagnostics
		p.Fit, fd = pl.checkFit(ctx, cfg, desired, prior, obs)
		diags = append(diags, fd...)
		if fd.HasErrors() {
			return nil, diags
		}
	}
	p.Unknown = unknown
	pl.finish(p, cfg, diags)
	return p, diags
}

// Saved is what a saved plan keeps besides the configuration and the state
// it was made against, so that Replay gives back the same Plan.
type Saved struct {
	Options      Options
	Observations Observations
	Planned      map[string]*providers.PlannedPool // by pool address
	Warnings     []string
}

// Replay rebuilds a saved plan: it decodes the configuration as Plan does,
// but takes PlanPool's results and the observations from saved instead of
// asking providers and supervisors again, so that apply executes exactly
// the plan that was shown. Check the saved plan is current (lineage, serial,
// configuration hash) before replaying it. Like Plan, it keeps prior.
func (pl *Planner) Replay(ctx context.Context, cfg *config.Config, prior *state.State, saved Saved) (*Plan, hcl.Diagnostics) {
	if prior == nil {
		prior = state.New("")
	}
	desired, diags := pl.desired(ctx, cfg, prior, modeReplay, saved.Planned)
	if diags.HasErrors() {
		return nil, diags
	}
	obs := saved.Observations
	if obs == nil {
		obs = Observations{}
	}
	p, dd := Diff(desired, prior, obs, saved.Options)
	diags = append(diags, dd...)
	if dd.HasErrors() {
		return nil, diags
	}
	pl.finish(p, cfg, nil)
	p.Warnings = slices.Clone(saved.Warnings)
	return p, diags
}

func (pl *Planner) finish(p *Plan, cfg *config.Config, diags hcl.Diagnostics) {
	p.ConfigHash = cfg.Hash
	p.LlorchVersion = pl.LlorchVersion
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			p.Warnings = append(p.Warnings, warningText(d))
		}
	}
}

func (pl *Planner) parallelism() int {
	if pl.Parallelism > 0 {
		return pl.Parallelism
	}
	return DefaultParallelism
}
