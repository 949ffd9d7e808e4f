package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// ensure runs the provider's Ensure for a pool and returns the prepared
// engine.
func (r *runner) ensure(d *plan.Desired) (*providers.PreparedEngine, error) {
	if !r.acquire() {
		return nil, ErrInterrupted
	}
	defer r.release()
	addr := d.Addr
	r.hooks.pre(addr, StepEnsure)
	prov, _, diags := r.deps.Providers.Provider(r.work, r.opts.Config, d.Pool.Engine)
	if diags.HasErrors() {
		err := fmt.Errorf("provider %q: %w", d.Pool.Engine, diags)
		r.hooks.post(addr, StepEnsure, Result{}, err)
		return nil, err
	}
	progress := r.hooks.progress(addr)
	req := providers.EnsureRequest{
		Pool:   plan.PoolSpec(d.Pool),
		Config: d.ProviderConfig,
		// A provider does not know which values are sensitive (a token in a
		// model URL): what it says is scrubbed before anyone sees it.
		Progress: func(ev providers.Event) {
			ev.Message = d.Scrub(ev.Message)
			progress(ev)
		},
	}
	// Unlike a start or a stop, preparing can be abandoned halfway (a
	// download or a build stages its result atomically), so the first
	// Ctrl-C cancels it rather than waiting for it to finish.
	ctx, cancel := r.interruptible()
	defer cancel()
	pe, pdiags := prov.Ensure(ctx, req)
	if ctx.Err() != nil && isClosed(r.stop) {
		err := fmt.Errorf("preparing engine: %w", ErrInterrupted)
		r.hooks.post(addr, StepEnsure, Result{}, err)
		r.mu.Lock()
		r.skipped++
		r.mu.Unlock()
		return nil, err
	}
	if pdiags.ProviderGone() {
		// The plugin process died under this call, perhaps because of
		// another pool's request. Retry once on a fresh process, one pool
		// at a time, so a pool that crashes it cannot take others along.
		pe, pdiags = r.retryEnsure(d, req)
	}
	if err := pdiags.Err(); err != nil {
		err = &EnsureError{Provider: d.Pool.Engine, Range: d.Pool.DeclRange, Err: scrubbed(d, err)}
		r.hooks.post(addr, StepEnsure, Result{}, err)
		return nil, err
	}
	if pe == nil {
		err := fmt.Errorf("provider %q returned no prepared engine", d.Pool.Engine)
		r.hooks.post(addr, StepEnsure, Result{}, err)
		return nil, err
	}
	if pe.Protocol != nil {
		if err := pe.Protocol.Validate(); err != nil {
			err = &EnsureError{Provider: d.Pool.Engine, Range: d.Pool.DeclRange, Err: err}
			r.hooks.post(addr, StepEnsure, Result{}, err)
			return nil, err
		}
	}
	pe.PoolID = d.Pool.ID
	if err := checkPinned(pe, d, r.opts.Pins, r.opts.LockMode); err != nil {
		r.hooks.post(addr, StepEnsure, Result{}, err)
		return nil, err
	}
	r.hooks.post(addr, StepEnsure, Result{EngineVersion: pe.EngineVersion}, nil)
	return pe, nil
}

// checkPinned refuses a prepared engine whose binary or model differs from
// the lock file's pin (unless -lockfile=upgrade), or, with
// -lockfile=readonly, whose binary is not pinned.
func checkPinned(pe *providers.PreparedEngine, d *plan.Desired, pins *providers.Pins, mode providers.LockMode) error {
	if pe.BinarySHA256 != "" {
		pin, ok := pins.Engine(d.Pool.Engine)
		switch {
		case ok && pin.SHA256 != pe.BinarySHA256 && mode != providers.LockUpgrade:
			return fmt.Errorf("the %s engine binary %s has sha256 %s, but %s pins %s, so it is not started; if it is the one you want, run llorch apply -lockfile=upgrade to pin it",
				d.Pool.Engine, pe.BinaryPath, plan.ShortDigest(pe.BinarySHA256), plan.LockFileName, plan.ShortDigest(pin.SHA256))
		case !ok && mode == providers.LockReadonly:
			return fmt.Errorf("the %s engine binary %s (sha256 %s) is not pinned in %s, and with -lockfile=readonly only pinned engine binaries run",
				d.Pool.Engine, pe.BinaryPath, plan.ShortDigest(pe.BinarySHA256), plan.LockFileName)
		}
	}
	sum := strings.TrimPrefix(pe.ModelSHA256, "sha256:")
	if pin, ok := pins.Model(d.Spec.Model.Ref); ok && sum != "" && pin.SHA256 != sum && mode != providers.LockUpgrade {
		return fmt.Errorf("the model %s has sha256 %s, but %s pins %s, so it is not served; if these are the bytes you want, run llorch apply -lockfile=upgrade to pin them",
			d.Spec.Model.Ref, atRevision(plan.ShortDigest(sum), pe.ModelRevision), plan.LockFileName, atRevision(plan.ShortDigest(pin.SHA256), pin.Revision))
	}
	return nil
}

// atRevision adds the revision an hf: ref resolved to, when known:
// "3f2a… (revision 0123abcd)" tells a moved ref from a changed file.
func atRevision(digest, revision string) string {
	if revision == "" {
		return digest
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	return digest + " (revision " + revision + ")"
}

// PinsOf is what the state says runs: for each provider, the engine binary
// its pools were prepared with, and for each model ref, its bytes. After
// apply these are the pins the lock file records.
func PinsOf(st *state.State) providers.Pins {
	pins := providers.Pins{Engines: map[string]providers.EnginePin{}, Models: map[string]providers.ModelPin{}}
	for _, addr := range st.Addrs() {
		sp := st.Pools[addr]
		pe := sp.Prepared
		if pe == nil || len(sp.Replicas) == 0 {
			continue
		}
		if pe.BinarySHA256 != "" {
			pins.Engines[sp.Engine] = providers.EnginePin{SHA256: pe.BinarySHA256, Version: pe.EngineVersion}
		}
		if pe.ModelSHA256 != "" && sp.Spec != nil {
			pins.Models[sp.Spec.Model.Ref] = providers.ModelPin{SHA256: strings.TrimPrefix(pe.ModelSHA256, "sha256:"), Size: pe.ModelSize, Revision: pe.ModelRevision}
		}
	}
	return pins
}

// EnsureError is a provider's failure to prepare a pool's engine. It names
// the provider, and Range is the pool's block, so that the error points at
// the configuration that asked for the engine.
type EnsureError struct {
	Provider string
	Range    hcl.Range
	Err      error
}

func (e *EnsureError) Error() string {
	return fmt.Sprintf("preparing engine (provider %q): %v", e.Provider, e.Err)
}
func (e *EnsureError) Unwrap() error { return e.Err }

// interruptible is r.work, cancelled as well when the run is interrupted
// (Ctrl-C).
func (r *runner) interruptible() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.work)
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// scrubbed is err with d's sensitive values hidden; it keeps err (and
// what it wraps) when it holds none.
func scrubbed(d *plan.Desired, err error) error {
	if msg := d.Scrub(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// retryEnsure calls Ensure again on a freshly started provider process,
// serialized across pools.
func (r *runner) retryEnsure(d *plan.Desired, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	// Resolve again: the resolver starts a fresh process when the last one
	// exited (an earlier retry may have crashed it too), and the new one
	// is configured before use.
	r.hooks.progress(d.Addr)(providers.Event{Stage: "retry",
		Message: fmt.Sprintf("provider %q exited while preparing; retrying once on a new plugin process", d.Pool.Engine)})
	r.deps.Providers.Forget(d.Pool.Engine)
	prov, _, diags := r.deps.Providers.Provider(r.work, r.opts.Config, d.Pool.Engine)
	if diags.HasErrors() {
		return nil, providers.FromError("Provider did not restart", diags)
	}
	return prov.Ensure(r.work, req)
}
