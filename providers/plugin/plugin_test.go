package plugin

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/proto"
)

// fakeProvider answers each RPC with the function set for it and records
// nothing itself: tests capture what they need in the closures.
type fakeProvider struct {
	getSchema    func(ctx context.Context) (*providers.Schema, providers.Diagnostics)
	configure    func(ctx context.Context, req providers.ConfigureRequest) providers.Diagnostics
	validatePool func(ctx context.Context, req providers.ValidatePoolRequest) providers.Diagnostics
	planPool     func(ctx context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics)
	ensure       func(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics)
	cleanup      func(ctx context.Context, req providers.CleanupRequest) providers.Diagnostics
}

func (f *fakeProvider) GetSchema(ctx context.Context) (*providers.Schema, providers.Diagnostics) {
	if f.getSchema == nil {
		return &providers.Schema{}, nil
	}
	return f.getSchema(ctx)
}

func (f *fakeProvider) Configure(ctx context.Context, req providers.ConfigureRequest) providers.Diagnostics {
	if f.configure == nil {
		return nil
	}
	return f.configure(ctx, req)
}

func (f *fakeProvider) ValidatePool(ctx context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
	if f.validatePool == nil {
		return nil
	}
	return f.validatePool(ctx, req)
}

func (f *fakeProvider) PlanPool(ctx context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
	if f.planPool == nil {
		return nil, nil
	}
	return f.planPool(ctx, req)
}

func (f *fakeProvider) Ensure(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	if f.ensure == nil {
		return nil, nil
	}
	return f.ensure(ctx, req)
}

func (f *fakeProvider) Cleanup(ctx context.Context, req providers.CleanupRequest) providers.Diagnostics {
	if f.cleanup == nil {
		return nil
	}
	return f.cleanup(ctx, req)
}

func (f *fakeProvider) Close() error { return nil }

// connect serves impl over a real gRPC connection in process, the way
// go-plugin serves it from a plugin executable, and returns the host's view.
func connect(t *testing.T, impl providers.Provider) providers.Provider {
	t.Helper()
	ps := map[string]goplugin.Plugin{PluginName: &GRPCProviderPlugin{Impl: impl, Name: "fake"}}
	client, _ := goplugin.TestPluginGRPCConn(t, false, ps)
	// Close also stops the server, through go-plugin's controller service.
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	p, ok := raw.(*GRPCClient)
	if !ok {
		t.Fatalf("Dispense returned %T, want *GRPCClient", raw)
	}
	return p
}

// ctyCmp compares the Go API's types, which hold cty values.
var ctyCmp = cmp.Options{
	cmp.Comparer(func(a, b cty.Type) bool { return a.Equals(b) }),
	cmp.Comparer(func(a, b cty.Value) bool { return a.RawEquals(b) }),
	cmp.Comparer(func(a, b cty.Path) bool { return a.Equals(b) }),
}

var everyPathKind = providers.Diagnostics{
	{Severity: providers.Error, Summary: "Whole pool", Detail: "No attribute."},
	{Severity: providers.Warning, Summary: "Model may not fit", Detail: "Needs 9 GiB.",
		Attribute: cty.GetAttrPath("model").GetAttr("ref")},
	{Severity: providers.Error, Summary: "Bad flag", Detail: "The pool owns --port.",
		Attribute: cty.GetAttrPath("flags").IndexInt(2)},
	{Severity: providers.Error, Summary: "Bad env", Detail: "Set it elsewhere.",
		Attribute: cty.GetAttrPath("env").IndexString("LLAMA_ARG_PORT")},
}

func fullPool() providers.PoolSpec {
	return providers.PoolSpec{
		Addr:     `pool.embed["bge"]`,
		ID:       "embed-bge",
		Model:    providers.ModelRef{Ref: "hf:org/repo/model.gguf@main", SHA256: "ab12"},
		Host:     "127.0.0.1",
		Port:     8080,
		Devices:  []int{0, 1},
		Ctx:      4096,
		Flags:    []string{"--parallel", "4"},
		Env:      map[string]string{"LLAMA_ARG_THREADS": "8"},
		Replicas: 3,
	}
}

func fullPrepared() *providers.PreparedEngine {
	return &providers.PreparedEngine{
		BinaryPath:       "/opt/llama/llama-server",
		Args:             []string{"-m", "/models/q.gguf", "--port", "8080"},
		Env:              map[string]string{"CUDA_VISIBLE_DEVICES": "0,1"},
		SecretEnv:        map[string]string{"LLAMA_API_KEY": "s3cr3t-key"},
		ProbeToken:       "s3cr3t-key",
		Host:             "127.0.0.1",
		Port:             8080,
		ModelPath:        "/models/q.gguf",
		ModelSHA256:      "ab12",
		BinarySHA256:     "cd34",
		EngineVersion:    "llamacpp-b6600-cuda",
		ProvisioningMode: "source",
		PoolID:           "embed-bge",
		ReplicaID:        "r1",
		DeviceMask:       "0,1",
		HealthPath:       "/health",
		Protocol:         fullProtocol(),
		ModelRevision:    "0123abc",
	}
}

func fullProtocol() *providers.EngineProtocol {
	return &providers.EngineProtocol{
		Readiness: providers.Readiness{Ready: []int{200}, Loading: []int{503}},
		Identity:  &providers.IdentityProbe{Path: "/props", Field: "model_path", Expect: "/models/q.gguf"},
		InFlight:  []providers.InFlightProbe{{Path: "/slots", CountTrue: "is_processing", Gauges: []string{"g"}}},
		Completion: &providers.CompletionProbe{Path: "/completion", PromptField: "prompt", MaxTokensField: "n_predict",
			Fixed: map[string]string{"model": "q"}, TextField: "content"},
		Stop:      providers.StopBehaviour{Signal: "SIGINT", RepeatForcesExit: true},
		LogCauses: []providers.LogCause{{Cause: "bad_argument", Contains: []string{"unrecognized arguments"}}},
	}
}

// TestFixturesSetEveryField keeps the round-trip tests honest as the Go API
// grows: a field added to one of these types fails here until the fixture
// sets it, and then the round trip fails until convert.go carries it.
func TestFixturesSetEveryField(t *testing.T) {
	planned := &providers.PlannedPool{
		EngineVersion:   "v",
		RequiresReplace: []cty.Path{cty.GetAttrPath("a")},
		Model:           fullModelInfo(),
		BinarySHA256:    "cd34",
		Memory:          fullMemory(),
		MemoryUnknown:   "u",
	}
	attr := providers.Attribute{Type: cty.String, Required: true, Optional: true, Sensitive: true,
		ForcesReplacement: true, Description: "d"}
	nested := providers.NestedBlock{Block: providers.Block{Attributes: map[string]*providers.Attribute{"a": &attr},
		Blocks: map[string]*providers.NestedBlock{"b": {}}, Description: "d"}, Nesting: providers.NestingList,
		Required: true, ForcesReplacement: true}
	for name, v := range map[string]any{
		"PoolSpec":         fullPool(),
		"ModelRef":         fullPool().Model,
		"PreparedEngine":   *fullPrepared(),
		"EngineProtocol":   *fullProtocol(),
		"Readiness":        fullProtocol().Readiness,
		"IdentityProbe":    *fullProtocol().Identity,
		"InFlightProbe":    fullProtocol().InFlight[0],
		"CompletionProbe":  *fullProtocol().Completion,
		"StopBehaviour":    fullProtocol().Stop,
		"LogCause":         fullProtocol().LogCauses[0],
		"ModelInfo":        *fullModelInfo(),
		"PlannedPool":      *planned,
		"MemoryEstimate":   *fullMemory(),
		"MemoryInputs":     fullMemory().Inputs,
		"DeviceMemory":     fullMemory().Host,
		"Event":            fullEvent,
		"Attribute":        attr,
		"NestedBlock":      nested,
		"Diagnostic":       everyPathKind[1],
		"Schema":           providers.Schema{Version: "v", Provider: &nested.Block, Pool: &nested.Block},
		"ConfigureRequest": fullConfigure(cty.EmptyObjectVal),
	} {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			if rv.Field(i).IsZero() {
				t.Errorf("the %s fixture leaves %s unset: set it, and carry it in convert.go", name, rv.Type().Field(i).Name)
			}
		}
	}
}

// fullConfigure is a Configure request that sets every field but config.
func fullConfigure(config cty.Value) providers.ConfigureRequest {
	return providers.ConfigureRequest{Config: config, LlorchVersion: "0.1.0", ConfigDir: "/srv/llorch", CacheDir: "/home/me/.cache/llorch"}
}

func fullMemory() *providers.MemoryEstimate {
	return &providers.MemoryEstimate{
		GPUs:       []providers.DeviceMemory{{Index: 1, Weights: 4 << 30, KVCache: 1 << 30, Compute: 300 << 20, Other: 1}},
		Host:       providers.DeviceMemory{Index: -1, Weights: 1 << 20, KVCache: 2, Compute: 3, Other: 4},
		MappedFile: "/m/q.gguf",
		Inputs: providers.MemoryInputs{Estimator: "e", Layers: 32, GPULayers: 33, Ctx: 4096, Parallel: 4,
			CacheTypeK: "q8_0", CacheTypeV: "f16", TensorSplit: []float64{1, 2}, FlashAttention: true, Mmap: true,
			BatchSize: 2048, UBatchSize: 512},
	}
}

var fullEvent = providers.Event{Stage: "download", Message: "model.gguf", Current: 1 << 20, Total: 9 << 20}

func fullModelInfo() *providers.ModelInfo {
	return &providers.ModelInfo{Path: "/m/q.gguf", SizeBytes: 9 << 20, Architecture: "llama",
		Parameters: 4_600_000, Quantization: "Q4_K_M", ContextLength: 2048, SHA256: "ab12"}
}

func TestGetSchemaRoundTrip(t *testing.T) {
	want := &providers.Schema{
		Version: "1.2.3",
		Provider: &providers.Block{
			Description: "The provider block.",
			Attributes: map[string]*providers.Attribute{
				"binary":    {Type: cty.String, Optional: true, Description: "A path or a name on PATH."},
				"cache_dir": {Type: cty.String, Optional: true},
			},
			Blocks: map[string]*providers.NestedBlock{
				"source": {
					Nesting:           providers.NestingSingle,
					Required:          true,
					ForcesReplacement: true,
					Block: providers.Block{
						Description: "Build from source.",
						Attributes: map[string]*providers.Attribute{
							"git":        {Type: cty.String, Required: true},
							"cmake_args": {Type: cty.List(cty.String), Optional: true},
						},
						Blocks: map[string]*providers.NestedBlock{
							"mirror": {Nesting: providers.NestingList, Block: providers.Block{
								Attributes: map[string]*providers.Attribute{"url": {Type: cty.String, Required: true}},
							}},
						},
					},
				},
			},
		},
		Pool: &providers.Block{
			Attributes: map[string]*providers.Attribute{
				"n_gpu_layers": {Type: cty.Number, Optional: true, ForcesReplacement: true, Description: "Layers on the GPU."},
				"api_key":      {Type: cty.String, Optional: true, Sensitive: true, ForcesReplacement: true},
				"labels":       {Type: cty.Map(cty.String), Optional: true},
				"tuning": {Type: cty.Object(map[string]cty.Type{
					"batch": cty.Number, "flash": cty.Bool,
				}), Optional: true},
			},
		},
	}
	p := connect(t, &fakeProvider{getSchema: func(context.Context) (*providers.Schema, providers.Diagnostics) {
		return want, providers.Diagnostics{providers.Warnf("Deprecated", "Use source.")}
	}})

	got, diags := p.GetSchema(t.Context())
	if diff := cmp.Diff(want, got, ctyCmp); diff != "" {
		t.Errorf("schema (-sent +received):\n%s", diff)
	}
	if len(diags) != 1 || diags[0].Severity != providers.Warning || diags[0].Summary != "Deprecated" {
		t.Errorf("diagnostics: got %#v", diags)
	}
	// The decoder spec built from the received schema must work as core uses it.
	if ty := got.Pool.ImpliedType(); !ty.HasAttribute("api_key") {
		t.Errorf("implied type of the received pool block lacks api_key: %#v", ty)
	}
}

func TestGetSchemaWithoutBlocksKeepsThemNil(t *testing.T) {
	p := connect(t, &fakeProvider{getSchema: func(context.Context) (*providers.Schema, providers.Diagnostics) {
		return &providers.Schema{Version: "0.1.0"}, nil
	}})
	got, diags := p.GetSchema(t.Context())
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	if got.Provider != nil || got.Pool != nil {
		t.Errorf("absent blocks arrived as %#v and %#v, want nil", got.Provider, got.Pool)
	}
}

func TestGetSchemaThatCannotBeEncodedIsADiagnostic(t *testing.T) {
	p := connect(t, &fakeProvider{getSchema: func(context.Context) (*providers.Schema, providers.Diagnostics) {
		return &providers.Schema{Pool: &providers.Block{Attributes: map[string]*providers.Attribute{"threads": {Optional: true}}}}, nil
	}})
	got, diags := p.GetSchema(t.Context())
	if got != nil {
		t.Errorf("schema: got %#v, want nil", got)
	}
	want := `Invalid provider schema: The provider's schema cannot be sent to llorch: pool block: attribute "threads" has no type. This is a bug in the provider.`
	if diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
}

func TestConfigureRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		config cty.Value
	}{
		{
			name: "sensitive values arrive intact",
			config: cty.ObjectVal(map[string]cty.Value{
				"binary":  cty.StringVal("/usr/local/bin/llama-server"),
				"api_key": cty.StringVal("s3cr3t-key").Mark("sensitive"),
				"jobs":    cty.NumberIntVal(8),
				"source":  cty.NullVal(cty.Object(map[string]cty.Type{"git": cty.String})),
			}),
		},
		{
			name:   "no provider block is a typed null",
			config: cty.NullVal(cty.Object(map[string]cty.Type{"binary": cty.String})),
		},
		{name: "no value at all", config: cty.NilVal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got providers.ConfigureRequest
			p := connect(t, &fakeProvider{configure: func(_ context.Context, req providers.ConfigureRequest) providers.Diagnostics {
				got = req
				return nil
			}})
			if diags := p.Configure(t.Context(), fullConfigure(tc.config)); diags.HasErrors() {
				t.Fatalf("Configure: %v", diags)
			}
			want, _ := tc.config.UnmarkDeep()
			if diff := cmp.Diff(fullConfigure(want), got, ctyCmp); diff != "" {
				t.Errorf("request (-sent +received):\n%s", diff)
			}
		})
	}
}

func TestValidatePoolRoundTrip(t *testing.T) {
	pools := map[string]providers.PoolSpec{
		"every field": fullPool(),
		"devices unset": func() providers.PoolSpec {
			p := fullPool()
			p.Devices = nil
			return p
		}(),
		"CPU only": func() providers.PoolSpec {
			p := fullPool()
			p.Devices = []int{}
			return p
		}(),
	}
	for name, pool := range pools {
		t.Run(name, func(t *testing.T) {
			var got providers.ValidatePoolRequest
			p := connect(t, &fakeProvider{validatePool: func(_ context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
				got = req
				return everyPathKind
			}})
			cfg := cty.ObjectVal(map[string]cty.Value{"n_gpu_layers": cty.NumberIntVal(99)})
			diags := p.ValidatePool(t.Context(), providers.ValidatePoolRequest{Pool: pool, Config: cfg})

			if diff := cmp.Diff(providers.ValidatePoolRequest{Pool: pool, Config: cfg}, got, ctyCmp); diff != "" {
				t.Errorf("request (-sent +received):\n%s", diff)
			}
			if (got.Pool.Devices == nil) != (pool.Devices == nil) {
				t.Errorf("devices nil-ness changed: sent %#v, received %#v", pool.Devices, got.Pool.Devices)
			}
			if diff := cmp.Diff(everyPathKind, diags, ctyCmp); diff != "" {
				t.Errorf("diagnostics (-sent +received):\n%s", diff)
			}
		})
	}
}

func TestPlanPoolRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		prior   *providers.PreparedEngine
		planned *providers.PlannedPool
		diags   providers.Diagnostics
	}{
		{
			name:  "new pool with model metadata",
			prior: nil,
			planned: &providers.PlannedPool{
				EngineVersion:   "llamacpp-b6600-cpu",
				RequiresReplace: []cty.Path{cty.GetAttrPath("engine_version"), cty.GetAttrPath("tensor_split").IndexInt(1)},
				Model:           fullModelInfo(),
				Memory:          fullMemory(),
			},
			diags: providers.Diagnostics{providers.Warnf("Model may not fit", "It needs more memory than device 0 has.")},
		},
		{
			name:    "existing pool, version unknown until Ensure",
			prior:   fullPrepared(),
			planned: &providers.PlannedPool{MemoryUnknown: "model not staged yet"},
		},
		{
			name:  "error without a plan",
			prior: fullPrepared(),
			diags: providers.Diagnostics{providers.AttributeErrorf(cty.GetAttrPath("model").GetAttr("ref"), "Model not found", "No such file.")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got providers.PlanPoolRequest
			p := connect(t, &fakeProvider{planPool: func(_ context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
				got = req
				return tc.planned, tc.diags
			}})
			req := providers.PlanPoolRequest{Pool: fullPool(), Config: cty.EmptyObjectVal, Prior: tc.prior}
			planned, diags := p.PlanPool(t.Context(), req)
			if diff := cmp.Diff(req, got, ctyCmp); diff != "" {
				t.Errorf("request (-sent +received):\n%s", diff)
			}
			if diff := cmp.Diff(tc.planned, planned, ctyCmp); diff != "" {
				t.Errorf("planned (-sent +received):\n%s", diff)
			}
			if diff := cmp.Diff(tc.diags, diags, ctyCmp); diff != "" {
				t.Errorf("diagnostics (-sent +received):\n%s", diff)
			}
		})
	}
}

func TestEnsureStreamsEveryEventThenTheResult(t *testing.T) {
	events := []providers.Event{
		{Stage: "clone", Message: "cloning llama.cpp"},
		{Stage: "build", Message: "building llama-server", Current: 1, Total: 3},
		{Stage: "build", Message: "building llama-server", Current: 3, Total: 3},
		fullEvent,
		{Stage: "verify", Message: "sha256 ok"},
	}
	var gotReq providers.EnsureRequest
	p := connect(t, &fakeProvider{ensure: func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		gotReq = req
		for _, ev := range events {
			req.Progress(ev)
		}
		return fullPrepared(), providers.Diagnostics{providers.Warnf("Slow disk", "Staging took long.")}
	}})

	var received []providers.Event
	pool := fullPool()
	pool.Devices = []int{}
	cfg := cty.ObjectVal(map[string]cty.Value{"api_key": cty.StringVal("s3cr3t-key").Mark("sensitive")})
	pe, diags := p.Ensure(t.Context(), providers.EnsureRequest{
		Pool:     pool,
		Config:   cfg,
		Progress: func(ev providers.Event) { received = append(received, ev) },
	})

	if diff := cmp.Diff(events, received); diff != "" {
		t.Errorf("progress events (-sent +received):\n%s", diff)
	}
	if diff := cmp.Diff(fullPrepared(), pe); diff != "" {
		t.Errorf("prepared engine (-sent +received):\n%s", diff)
	}
	if len(diags) != 1 || diags[0].Summary != "Slow disk" || diags[0].Severity != providers.Warning {
		t.Errorf("diagnostics: got %#v", diags)
	}
	if gotReq.Pool.Devices == nil || len(gotReq.Pool.Devices) != 0 {
		t.Errorf("CPU-only devices arrived as %#v, want an empty non-nil slice", gotReq.Pool.Devices)
	}
	if key := gotReq.Config.GetAttr("api_key"); !key.RawEquals(cty.StringVal("s3cr3t-key")) {
		t.Errorf("api_key arrived as %#v", key)
	}
}

// TestEnsureWithoutAProtocolStaysWithout: a plugin built before
// EngineProtocol sends none, and core must see nil (llama-server's
// protocol), not an empty protocol that probes nothing.
func TestEnsureWithoutAProtocolStaysWithout(t *testing.T) {
	p := connect(t, &fakeProvider{ensure: func(context.Context, providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		return &providers.PreparedEngine{BinaryPath: "/bin/engine"}, nil
	}})
	pe, diags := p.Ensure(t.Context(), providers.EnsureRequest{Pool: fullPool()})
	if diags.HasErrors() || pe == nil || pe.Protocol != nil {
		t.Fatalf("got %#v, %v; want a nil Protocol", pe, diags)
	}
}

func TestEnsureWithoutProgressCallbackDiscardsEvents(t *testing.T) {
	p := connect(t, &fakeProvider{ensure: func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		req.Progress(providers.Event{Stage: "build"})
		return &providers.PreparedEngine{BinaryPath: "/bin/engine"}, nil
	}})
	pe, diags := p.Ensure(t.Context(), providers.EnsureRequest{Pool: fullPool()})
	if diags.HasErrors() || pe == nil || pe.BinaryPath != "/bin/engine" {
		t.Errorf("got %#v, %v", pe, diags)
	}
}

func TestEnsureProgressFromManyGoroutinesArrivesWhole(t *testing.T) {
	const workers, each = 8, 25
	p := connect(t, &fakeProvider{ensure: func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					req.Progress(providers.Event{Stage: fmt.Sprintf("w%d", w), Current: int64(i)})
				}
			}()
		}
		wg.Wait()
		return &providers.PreparedEngine{}, nil
	}})
	count := map[string]int{}
	_, diags := p.Ensure(t.Context(), providers.EnsureRequest{Progress: func(ev providers.Event) { count[ev.Stage]++ }})
	if diags.HasErrors() {
		t.Fatalf("Ensure: %v", diags)
	}
	for w := range workers {
		if got := count[fmt.Sprintf("w%d", w)]; got != each {
			t.Errorf("worker %d: %d events arrived, want %d", w, got, each)
		}
	}
}

func TestEnsureCancelledOnTheHostCancelsThePluginsContext(t *testing.T) {
	sawCancel := make(chan error, 1)
	p := connect(t, &fakeProvider{ensure: func(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		req.Progress(providers.Event{Stage: "download", Message: "started"})
		<-ctx.Done()
		sawCancel <- ctx.Err()
		return nil, providers.Diagnostics{providers.Errorf("Cancelled", "Stopped downloading.")}
	}})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, diags := p.Ensure(ctx, providers.EnsureRequest{
		Pool: fullPool(),
		// Cancel mid-Ensure: after the plugin has started working.
		Progress: func(providers.Event) { cancel() },
	})

	want := `Request cancelled: The Ensure call to the "fake" provider plugin was cancelled.`
	if diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
	select {
	case err := <-sawCancel:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("plugin's ctx ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin's ctx was never cancelled")
	}
}

func TestCallsWithAnEndedContext(t *testing.T) {
	p := connect(t, &fakeProvider{})
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel2()

	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{name: "cancelled", ctx: cancelled,
			want: `Request cancelled: The ValidatePool call to the "fake" provider plugin was cancelled.`},
		{name: "past its deadline", ctx: expired,
			want: `Request timed out: The "fake" provider plugin did not finish the ValidatePool call before its deadline.`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			diags := p.ValidatePool(tc.ctx, providers.ValidatePoolRequest{Pool: fullPool()})
			if diags.Error() != tc.want {
				t.Errorf("got %q\nwant %q", diags.Error(), tc.want)
			}
		})
	}
}

func TestCleanupRoundTrip(t *testing.T) {
	var got providers.CleanupRequest
	p := connect(t, &fakeProvider{cleanup: func(_ context.Context, req providers.CleanupRequest) providers.Diagnostics {
		got = req
		return providers.Diagnostics{providers.Warnf("Cache kept", "Another pool uses it.")}
	}})
	req := providers.CleanupRequest{Pool: fullPool(), Config: cty.EmptyObjectVal, Prepared: fullPrepared()}
	diags := p.Cleanup(t.Context(), req)
	if diff := cmp.Diff(req, got, ctyCmp); diff != "" {
		t.Errorf("request (-sent +received):\n%s", diff)
	}
	if len(diags) != 1 || diags[0].Summary != "Cache kept" {
		t.Errorf("diagnostics: got %#v", diags)
	}
}

func TestUnknownValuesAreRefusedBeforeTheCall(t *testing.T) {
	called := false
	p := connect(t, &fakeProvider{validatePool: func(context.Context, providers.ValidatePoolRequest) providers.Diagnostics {
		called = true
		return nil
	}})
	diags := p.ValidatePool(t.Context(), providers.ValidatePoolRequest{Config: cty.UnknownVal(cty.String)})
	want := `Invalid provider request: llorch could not encode the ValidatePool request for the "fake" provider plugin: the value is not fully known. This is a bug in llorch.`
	if diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
	if called {
		t.Error("the plugin was called with a value that could not be encoded")
	}
}

// rawServe serves srv (not a GRPCServer) so tests can make a plugin
// misbehave in ways GRPCServer never does.
func rawServe(t *testing.T, srv proto.ProviderServer, diagnose func() string) (*GRPCClient, *grpc.Server) {
	t.Helper()
	conn, server := goplugin.TestGRPCConn(t, func(s *grpc.Server) { proto.RegisterProviderServer(s, srv) })
	t.Cleanup(func() {
		_ = conn.Close()
		server.Stop()
	})
	return &GRPCClient{client: proto.NewProviderClient(conn), name: "odd", diagnose: diagnose}, server
}

type oldServer struct {
	proto.UnimplementedProviderServer
}

func TestMethodThePluginLacksIsADiagnostic(t *testing.T) {
	c, _ := rawServe(t, oldServer{}, nil)
	diags := c.Cleanup(t.Context(), providers.CleanupRequest{})
	want := `Unsupported plugin method: The "odd" provider plugin does not implement Cleanup; it may have been built for another llorch version.`
	if diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
}

type silentEnsure struct {
	proto.UnimplementedProviderServer
}

func (silentEnsure) Ensure(*proto.Ensure_Request, grpc.ServerStreamingServer[proto.Ensure_Response]) error {
	return nil
}

func TestEnsureStreamWithoutAResultIsADiagnostic(t *testing.T) {
	c, _ := rawServe(t, silentEnsure{}, nil)
	_, diags := c.Ensure(t.Context(), providers.EnsureRequest{})
	want := `Invalid provider response: The "odd" provider plugin answered Ensure with something llorch cannot use: the stream ended without a result. This is a bug in the provider.`
	if diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
}

// vanishingEnsure sends one event and then blocks until the whole server
// is stopped, as a plugin process that dies mid-Ensure would be.
type vanishingEnsure struct {
	proto.UnimplementedProviderServer
}

func (vanishingEnsure) Ensure(_ *proto.Ensure_Request, stream grpc.ServerStreamingServer[proto.Ensure_Response]) error {
	_ = stream.Send(&proto.Ensure_Response{Kind: &proto.Ensure_Response_Progress{Progress: &proto.Event{Stage: "build"}}})
	<-stream.Context().Done()
	return stream.Context().Err()
}

func TestPluginThatVanishesMidEnsureDidNotRespond(t *testing.T) {
	c, server := rawServe(t, vanishingEnsure{}, func() string { return "Its last words: boom." })
	var events int
	_, diags := c.Ensure(t.Context(), providers.EnsureRequest{Progress: func(providers.Event) {
		events++
		server.Stop() // the plugin dies once it has started working
	}})
	want := `Plugin did not respond: The "odd" provider plugin encountered an error, and failed to respond to the Ensure call. Its last words: boom.`
	if diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
	if events != 1 {
		t.Errorf("%d progress events before the failure, want 1", events)
	}
}

func TestHandshakeIsFixed(t *testing.T) {
	// These values are in every plugin ever built; changing them breaks all of them.
	if Handshake.ProtocolVersion != 1 || Handshake.MagicCookieKey != "LLORCH_PLUGIN_MAGIC_COOKIE" ||
		Handshake.MagicCookieValue != "a62bf4365e8fd81be8adb4d087f5047f282c617ee39e2788bc4847c7a9966616" {
		t.Errorf("handshake changed: %#v", Handshake)
	}
	set, ok := VersionedPlugins[ProtocolVersion]
	if !ok {
		t.Fatalf("VersionedPlugins has no set for protocol %d", ProtocolVersion)
	}
	if _, ok := set[PluginName].(*GRPCProviderPlugin); !ok {
		t.Errorf("protocol %d set serves %T under %q, want *GRPCProviderPlugin", ProtocolVersion, set[PluginName], PluginName)
	}
	if len(AllowedProtocols) != 1 || AllowedProtocols[0] != goplugin.ProtocolGRPC {
		t.Errorf("AllowedProtocols = %v, want gRPC only", AllowedProtocols)
	}
}

type failingConfigure struct {
	proto.UnimplementedProviderServer
}

func (failingConfigure) Configure(context.Context, *proto.Configure_Request) (*proto.Configure_Response, error) {
	return nil, status.Error(codes.Internal, "state corrupted")
}

func TestUnexpectedPluginErrorIsADiagnostic(t *testing.T) {
	c, _ := rawServe(t, failingConfigure{}, nil)
	diags := c.Configure(t.Context(), providers.ConfigureRequest{})
	want := `Plugin error: The "odd" provider plugin returned an unexpected error from Configure: state corrupted.`
	if diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
}
