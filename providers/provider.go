package providers

import (
	"context"
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// Provider is core's view of a provider, whether in-process (tests), served by
// llorch itself (the built-in llamacpp, self-exec), or a third-party plugin
// executable. Every method honours ctx.
//
// The lifecycle is GetSchema → Configure (once, with the provider "NAME" {}
// block) → any number of ValidatePool / PlanPool / Ensure / Cleanup → Close.
type Provider interface {
	// GetSchema describes the provider block and the pool-level block named
	// after the provider, so that core can decode them (plugins never see HCL).
	GetSchema(ctx context.Context) (*Schema, Diagnostics)
	// Configure receives the decoded provider block.
	Configure(ctx context.Context, req ConfigureRequest) Diagnostics
	// ValidatePool checks a pool without touching the network or the cache.
	ValidatePool(ctx context.Context, req ValidatePoolRequest) Diagnostics
	// PlanPool reports what Ensure would produce: the engine version, the
	// attributes whose change forces a replacement, model metadata and warnings.
	// It may read local files and cheap remote metadata; it never builds or
	// downloads.
	PlanPool(ctx context.Context, req PlanPoolRequest) (*PlannedPool, Diagnostics)
	// Ensure builds or locates the engine binary and stages the model. It
	// never spawns the engine. It is called once per pool; apply derives
	// per-replica copies with PreparedEngine.ForReplica.
	Ensure(ctx context.Context, req EnsureRequest) (*PreparedEngine, Diagnostics)
	// Cleanup runs when a pool is destroyed (for example to release cache
	// pins). It must not delete anything another pool may still use.
	Cleanup(ctx context.Context, req CleanupRequest) Diagnostics
	// Close ends the provider (for plugins: the plugin process).
	Close() error
}

// Resolver hands plan and apply a provider by name ("llamacpp"). The
// returned provider is not yet configured; callers call Configure.
type Resolver interface {
	// Names lists every provider that can be resolved, sorted.
	Names() []string
	// Provider starts (or returns the running) provider called name.
	Provider(ctx context.Context, name string) (Provider, error)
}

// PoolSpec is the provider-neutral, normalized pool as core evaluated it.
type PoolSpec struct {
	Addr string // "pool.chat", `pool.embed["bge"]`
	ID   string // file-safe form of Addr without "pool.": "chat", "embed-bge"

	Model    ModelRef
	Host     string
	Port     int   // first replica's port; 0 = chosen at apply time
	Devices  []int // nil = engine default; non-nil and empty = CPU only
	Ctx      int   // 0 = engine default
	Flags    []string
	Env      map[string]string
	Replicas int
}

// CPUOnly reports whether the pool asked for no GPU (devices = []).
func (p PoolSpec) CPUOnly() bool { return p.Devices != nil && len(p.Devices) == 0 }

// DeviceMask is the CUDA_VISIBLE_DEVICES form of Devices ("0,1"), "" when unset.
func (p PoolSpec) DeviceMask() string {
	s := ""
	for i, d := range p.Devices {
		if i > 0 {
			s += ","
		}
		s += strconv.Itoa(d)
	}
	return s
}

// ModelRef names a model: file:/abs/path.gguf, https://…, or
// hf:org/repo/file.gguf[@revision]; SHA256 is verified when set.
type ModelRef struct {
	Ref    string
	SHA256 string
}

// ConfigureRequest carries the provider "NAME" {} block, decoded by core
// against Schema.Provider. Config is cty.NullVal of the block type when the
// configuration has no provider block.
type ConfigureRequest struct {
	Config        cty.Value
	LlorchVersion string
	// ConfigDir is the configuration's directory, absolute: relative
	// file: model refs and relative paths in provider and pool blocks
	// resolve against it (stage.ParseRef does), so that they mean the
	// same for every provider wherever it runs.
	ConfigDir string
	// CacheDir is llorch's cache directory, absolute:
	// $XDG_CACHE_HOME/llorch or ~/.cache/llorch. It is shared by every
	// provider and configuration of the user: models staged with
	// providers/sdk/stage live in its models/ directory and their digests
	// in digests.json, so one model is downloaded once whatever provider
	// serves it; anything else a provider keeps goes in a subdirectory
	// named after the provider. A provider may let its block override it.
	//
	// Both are empty when the host is an older llorch: a provider then
	// falls back to its working directory and its own default cache.
	CacheDir string
}

// ValidatePoolRequest carries one pool and its provider-specific block.
type ValidatePoolRequest struct {
	Pool   PoolSpec
	Config cty.Value // the pool-level provider block, decoded against Schema.Pool
}

// PlanPoolRequest asks what Ensure would produce. Prior is the engine as it
// was last prepared for this pool (nil for a new pool), so that a provider
// can say that a moved source ref forces a replacement.
type PlanPoolRequest struct {
	Pool   PoolSpec
	Config cty.Value
	Prior  *PreparedEngine
	// PinnedBinarySHA256 is the engine binary digest the lock file pins,
	// "" when it pins none. A provider must not run an engine binary while
	// planning (for its --version, say) unless the binary's sha256 is this
	// one: the configuration may come from a pull request, and plan runs
	// where the engines do. It reports BinarySHA256 either way, and leaves
	// EngineVersion empty when it did not run the binary.
	PinnedBinarySHA256 string
}

// PlannedPool is a provider's answer to PlanPool.
type PlannedPool struct {
	// EngineVersion is the version Ensure will produce, "" when it cannot be
	// known before Ensure (for example a source ref not fetched yet).
	EngineVersion string
	// RequiresReplace lists attribute paths (in the pool's provider block,
	// or cty.GetAttrPath("engine_version")) whose change forces replacement
	// beyond those marked ForcesReplacement in the schema.
	RequiresReplace []cty.Path
	// Model is the model's metadata when the provider could read it.
	Model *ModelInfo
	// BinarySHA256 is the digest of the engine binary Ensure will use, ""
	// when it is not known without hashing. A provider hashes a binary
	// that changed on disk since Prior was prepared (new size or mtime), so
	// that the plan replaces engines only when the bytes differ.
	BinarySHA256 string
	// Memory is what one replica needs in memory, by device; nil when the
	// provider does not estimate it (then MemoryUnknown may say why). Core
	// builds the plan's fit table from it.
	Memory *MemoryEstimate
	// MemoryUnknown says why Memory is nil ("model not staged yet; …"),
	// "" when the provider gives no reason.
	MemoryUnknown string
}

// ModelInfo is GGUF metadata shown in the plan.
type ModelInfo struct {
	Path          string
	SizeBytes     int64
	Architecture  string
	Parameters    uint64 // total parameter count
	Quantization  string // "Q4_K_M"
	ContextLength int    // trained context length
	SHA256        string // "" when not known without hashing
}

// EnsureRequest asks a provider to prepare the engine for one pool.
type EnsureRequest struct {
	Pool   PoolSpec
	Config cty.Value
	// Progress receives events while Ensure runs (streamed over gRPC for
	// plugins); nil discards them.
	Progress func(Event)
}

// CleanupRequest is sent once for a pool that is being destroyed.
type CleanupRequest struct {
	Pool     PoolSpec
	Config   cty.Value
	Prepared *PreparedEngine
}

// Event is one progress report from Ensure.
type Event struct {
	Stage   string // "clone", "build", "download", "verify", "inspect", …
	Message string
	Current int64 // bytes (or steps) done, 0 when not applicable
	Total   int64 // bytes (or steps) expected, 0 when unknown
}

// PreparedEngine is what Ensure returns: everything the supervisor needs to
// start one engine. Fields match DESIGN §5 (the seed's fields plus env,
// health path, model digest and provisioning mode).
type PreparedEngine struct {
	BinaryPath string
	Args       []string // engine arguments, including -m/--host/--port/-c for the pool's values
	Env        map[string]string
	SecretEnv  map[string]string // like Env, but never written to state, plans, handoff files or logs
	// ProbeToken is the bearer token the engine requires on its non-health
	// endpoints (llama-server's api key), so the supervisor can ask about
	// in-flight requests while draining. Secret, like SecretEnv.
	ProbeToken       string
	Host             string
	Port             int
	ModelPath        string
	ModelSHA256      string
	BinarySHA256     string // "" when the provider does not hash its binary
	EngineVersion    string
	ProvisioningMode string // "binary" | "source" | provider-defined
	PoolID           string
	ReplicaID        string
	DeviceMask       string
	HealthPath       string // "/health" when empty
	// ModelRevision is the commit an hf: ref resolved to when the model
	// was downloaded, "" when unknown (the lock file records it).
	ModelRevision string
	// Protocol says how to probe, drain and stop the engine; nil means
	// llama-server's (see EngineProtocol).
	Protocol *EngineProtocol
}

// ForReplica returns a copy of pe for one replica listening on port,
// ReplicaID set and the maps copied so replicas never share them. When Args
// or Env values hold PortPlaceholder, each one becomes the port; otherwise
// (providers written before the placeholder) the port after a PortFlags
// spelling in Args is rewritten.
func (pe PreparedEngine) ForReplica(id string, port int) PreparedEngine {
	out := pe
	out.ReplicaID = id
	out.Port = port
	out.Args = make([]string, len(pe.Args))
	copy(out.Args, pe.Args)
	out.Env = maps.Clone(pe.Env)
	out.SecretEnv = maps.Clone(pe.SecretEnv)
	if pe.usesPlaceholder() {
		p := strconv.Itoa(port)
		for i, a := range out.Args {
			out.Args[i] = strings.ReplaceAll(a, PortPlaceholder, p)
		}
		for k, v := range out.Env {
			out.Env[k] = strings.ReplaceAll(v, PortPlaceholder, p)
		}
		return out
	}
	for i, a := range out.Args {
		for _, f := range PortFlags {
			switch {
			case a == f && i+1 < len(out.Args):
				out.Args[i+1] = strconv.Itoa(port)
			case strings.HasPrefix(a, f+"="):
				out.Args[i] = f + "=" + strconv.Itoa(port)
			}
		}
	}
	return out
}

// PortPlaceholder, in a PreparedEngine's Args or Env values, is where each
// replica's port goes: "--port", "{port}", or "PORT": "{port}" for an
// engine that reads its port from the environment.
const PortPlaceholder = "{port}"

func (pe PreparedEngine) usesPlaceholder() bool {
	for _, a := range pe.Args {
		if strings.Contains(a, PortPlaceholder) {
			return true
		}
	}
	for _, v := range pe.Env {
		if strings.Contains(v, PortPlaceholder) {
			return true
		}
	}
	return false
}

// PortFlags are the argument spellings ForReplica rewrites ("--port N" and
// "--port=N"): providers spell the listening port this way.
var PortFlags = []string{"--port"}

// SortedKeys returns m's keys in order; handy for deterministic env lists.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
