package providertest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

// EngineVersion is what the fake plans and prepares unless told otherwise.
const EngineVersion = "fake-1"

// Schema returns the fake's schema. The provider block has binary and
// cache_dir; the pool-level block has
//
//	api_key      string, sensitive
//	n_gpu_layers number
//	build_ref    string, forces replacement
//	extra_args   list(string)
//	source { git = string, ref = string (forces replacement) }  (at most one)
func Schema() *providers.Schema {
	return &providers.Schema{
		Version: "0.0.1-test",
		Provider: &providers.Block{
			Attributes: map[string]*providers.Attribute{
				"binary":    {Type: cty.String, Optional: true, Description: "engine binary"},
				"cache_dir": {Type: cty.String, Optional: true, Description: "cache directory"},
			},
		},
		Pool: &providers.Block{
			Attributes: map[string]*providers.Attribute{
				"api_key":      {Type: cty.String, Optional: true, Sensitive: true},
				"n_gpu_layers": {Type: cty.Number, Optional: true},
				"build_ref":    {Type: cty.String, Optional: true, ForcesReplacement: true},
				"extra_args":   {Type: cty.List(cty.String), Optional: true},
			},
			Blocks: map[string]*providers.NestedBlock{
				"source": {
					Nesting: providers.NestingSingle,
					Block: providers.Block{Attributes: map[string]*providers.Attribute{
						"git": {Type: cty.String, Optional: true},
						"ref": {Type: cty.String, Optional: true, ForcesReplacement: true},
					}},
				},
			},
		},
	}
}

// Call is one recorded call to the fake.
type Call struct {
	Method string // "GetSchema", "Configure", "ValidatePool", "PlanPool", "Ensure", "Cleanup", "Close"
	Pool   providers.PoolSpec
	Config cty.Value
	Prior  *providers.PreparedEngine // PlanPool
	// Prepared is Cleanup's PreparedEngine.
	Prepared *providers.PreparedEngine
}

// Provider is a configurable fake providers.Provider. The zero value works:
// it has Schema(), accepts every configuration, plans EngineVersion and
// prepares an engine from the pool's values. Set a hook to change one RPC.
// Hooks run with the fake's lock released, so they may block on ctx.
type Provider struct {
	// SchemaValue replaces Schema() when set.
	SchemaValue *providers.Schema
	// SchemaDiags are returned by GetSchema.
	SchemaDiags providers.Diagnostics

	ConfigureFunc    func(ctx context.Context, req providers.ConfigureRequest) providers.Diagnostics
	ValidatePoolFunc func(ctx context.Context, req providers.ValidatePoolRequest) providers.Diagnostics
	PlanPoolFunc     func(ctx context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics)
	EnsureFunc       func(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics)
	CleanupFunc      func(ctx context.Context, req providers.CleanupRequest) providers.Diagnostics

	// Events are sent to EnsureRequest.Progress before Ensure returns.
	Events []providers.Event

	mu     sync.Mutex
	calls  []Call
	closed bool
}

var _ providers.Provider = (*Provider)(nil)

func (p *Provider) record(c Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
}

// Calls returns the calls so far, in order.
func (p *Provider) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// CallsTo returns the calls to method, in order.
func (p *Provider) CallsTo(method string) []Call {
	var out []Call
	for _, c := range p.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Closed reports whether Close was called.
func (p *Provider) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func ctxDiags(ctx context.Context, method string) providers.Diagnostics {
	if err := ctx.Err(); err != nil {
		return providers.FromError(method+" cancelled", err)
	}
	return nil
}

// GetSchema implements providers.Provider.
func (p *Provider) GetSchema(ctx context.Context) (*providers.Schema, providers.Diagnostics) {
	p.record(Call{Method: "GetSchema"})
	if d := ctxDiags(ctx, "GetSchema"); d != nil {
		return nil, d
	}
	if p.SchemaValue != nil {
		return p.SchemaValue, p.SchemaDiags
	}
	return Schema(), p.SchemaDiags
}

// Configure implements providers.Provider.
func (p *Provider) Configure(ctx context.Context, req providers.ConfigureRequest) providers.Diagnostics {
	p.record(Call{Method: "Configure", Config: req.Config})
	if d := ctxDiags(ctx, "Configure"); d != nil {
		return d
	}
	if p.ConfigureFunc != nil {
		return p.ConfigureFunc(ctx, req)
	}
	return nil
}

// ValidatePool implements providers.Provider.
func (p *Provider) ValidatePool(ctx context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
	p.record(Call{Method: "ValidatePool", Pool: req.Pool, Config: req.Config})
	if d := ctxDiags(ctx, "ValidatePool"); d != nil {
		return d
	}
	if p.ValidatePoolFunc != nil {
		return p.ValidatePoolFunc(ctx, req)
	}
	return nil
}

// PlanPool implements providers.Provider.
func (p *Provider) PlanPool(ctx context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
	p.record(Call{Method: "PlanPool", Pool: req.Pool, Config: req.Config, Prior: req.Prior})
	if d := ctxDiags(ctx, "PlanPool"); d != nil {
		return nil, d
	}
	if p.PlanPoolFunc != nil {
		return p.PlanPoolFunc(ctx, req)
	}
	return &providers.PlannedPool{EngineVersion: EngineVersion}, nil
}

// Ensure implements providers.Provider. Without EnsureFunc it returns
// DefaultEngine(req.Pool).
func (p *Provider) Ensure(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	p.record(Call{Method: "Ensure", Pool: req.Pool, Config: req.Config})
	if d := ctxDiags(ctx, "Ensure"); d != nil {
		return nil, d
	}
	if req.Progress != nil {
		for _, ev := range p.Events {
			req.Progress(ev)
		}
	}
	if p.EnsureFunc != nil {
		return p.EnsureFunc(ctx, req)
	}
	pe := DefaultEngine(req.Pool)
	return &pe, nil
}

// Cleanup implements providers.Provider.
func (p *Provider) Cleanup(ctx context.Context, req providers.CleanupRequest) providers.Diagnostics {
	p.record(Call{Method: "Cleanup", Pool: req.Pool, Config: req.Config, Prepared: req.Prepared})
	if d := ctxDiags(ctx, "Cleanup"); d != nil {
		return d
	}
	if p.CleanupFunc != nil {
		return p.CleanupFunc(ctx, req)
	}
	return nil
}

// Close implements providers.Provider.
func (p *Provider) Close() error {
	p.record(Call{Method: "Close"})
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

// DefaultEngine is the engine the fake prepares for pool: binary
// "/fake/bin/engine", the model path from a file: ref, and the pool's
// host, port, ctx and flags as arguments.
func DefaultEngine(pool providers.PoolSpec) providers.PreparedEngine {
	model := strings.TrimPrefix(pool.Model.Ref, "file:")
	args := []string{"-m", model, "--host", pool.Host, "--port", strconv.Itoa(pool.Port)}
	if pool.Ctx > 0 {
		args = append(args, "-c", strconv.Itoa(pool.Ctx))
	}
	args = append(args, pool.Flags...)
	return providers.PreparedEngine{
		BinaryPath:       "/fake/bin/engine",
		Args:             args,
		Env:              maps.Clone(pool.Env),
		Host:             pool.Host,
		Port:             pool.Port,
		ModelPath:        model,
		ModelSHA256:      pool.Model.SHA256,
		EngineVersion:    EngineVersion,
		ProvisioningMode: "binary",
		PoolID:           pool.ID,
		DeviceMask:       pool.DeviceMask(),
		HealthPath:       "/health",
	}
}

// ErrNoProvider is wrapped by Resolver.Provider for an unknown name.
var ErrNoProvider = errors.New("no such provider")

// Resolver is a fake providers.Resolver over fixed providers.
type Resolver struct {
	// Providers maps a provider name ("llamacpp") to what Provider returns.
	Providers map[string]providers.Provider
	// Errors maps a name to the error Provider returns for it (a plugin
	// that will not start).
	Errors map[string]error

	mu       sync.Mutex
	resolved map[string]int
}

var _ providers.Resolver = (*Resolver)(nil)

// NewResolver returns a Resolver serving p under each of names.
func NewResolver(p providers.Provider, names ...string) *Resolver {
	r := &Resolver{Providers: map[string]providers.Provider{}}
	for _, n := range names {
		r.Providers[n] = p
	}
	return r
}

// Names implements providers.Resolver.
func (r *Resolver) Names() []string {
	names := slices.Collect(maps.Keys(r.Providers))
	for n := range r.Errors {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Provider implements providers.Resolver.
func (r *Resolver) Provider(ctx context.Context, name string) (providers.Provider, error) {
	r.mu.Lock()
	if r.resolved == nil {
		r.resolved = map[string]int{}
	}
	r.resolved[name]++
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err, ok := r.Errors[name]; ok {
		return nil, err
	}
	p, ok := r.Providers[name]
	if !ok {
		return nil, fmt.Errorf("provider %q: %w", name, ErrNoProvider)
	}
	return p, nil
}

// Resolved returns how many times Provider was asked for name.
func (r *Resolver) Resolved(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resolved[name]
}
