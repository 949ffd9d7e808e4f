package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Config is the evaluated configuration of one working directory: every
// *.llorch.hcl file, with variables, locals, count and for_each resolved.
// Provider-specific blocks stay as hcl.Body (with the EvalContext to decode
// them) because their schema comes from the provider at plan time.
type Config struct {
	Dir       string
	Settings  Settings
	Variables map[string]*Variable
	Providers map[string]*ProviderBlock // by provider name
	Pools     []*Pool                   // expanded instances, sorted by Addr
	// Devices is the devices {} block, nil when absent (plan then asks
	// nvidia-smi and /proc/meminfo).
	Devices *Devices
	// Files holds every parsed file, for diagnostic snippets.
	Files map[string]*hcl.File
	// Hash is "sha256:…" over the sources (file names and bytes) and the
	// input variable values: a saved plan records it and is refused when it
	// no longer matches.
	Hash string
}

// Pool returns the pool instance at addr, or nil.
func (c *Config) Pool(addr string) *Pool {
	for _, p := range c.Pools {
		if p.Addr == addr {
			return p
		}
	}
	return nil
}

// Settings is the llorch {} block.
type Settings struct {
	StateDir   string   // default ".llorch"
	HandoffDir string   // default "<state_dir>/handoff"
	Backend    *Backend // nil: the local file <state_dir>/state.json
	DeclRange  hcl.Range
}

// Variable is a variable "NAME" {} block and its final value.
type Variable struct {
	Name        string
	Type        cty.Type
	Default     cty.Value
	Description string
	Sensitive   bool
	Value       cty.Value // after -var, -var-file, auto files, LLORCH_VAR_*
	DeclRange   hcl.Range
}

// ProviderBlock is a provider "NAME" {} block; Body is decoded in plan
// against the provider's schema.
type ProviderBlock struct {
	Name      string
	Body      hcl.Body
	EvalCtx   *hcl.EvalContext
	DeclRange hcl.Range
}

// Pool is one expanded pool instance (one per count index or for_each key).
type Pool struct {
	Addr string    // "pool.chat", `pool.embed["bge"]`, "pool.x[0]"
	Name string    // the block label: "chat"
	Key  cty.Value // each.key (string) or count.index (number); cty.NilVal without count/for_each
	ID   string    // file-safe id used for run dirs and handoff files: "chat", "embed-bge", "x-0"
	// Incomplete: an attribute depends on a value that is not known (a
	// required variable `llorch validate` was given no value for), so it
	// was left unset and the pool can only be checked in part.
	Incomplete bool

	Engine   string
	Replicas int
	Model    Model
	Host     string
	Port     int   // 0 = pick free ports at apply time
	Devices  []int // nil = unset (engine default); non-nil empty = CPU only
	Ctx      int
	Flags    []string
	Env      map[string]string
	Labels   map[string]string
	Health   Health
	Restart  Restart
	Drain    Drain
	Update   Update
	// Fit is what plan does when the pool's replicas do not fit the
	// machine's memory: FitError (default) or FitWarn.
	Fit string

	// ProviderBody is the pool-level block named after Engine (llamacpp {}),
	// nil when absent; decode it with EvalCtx against the provider's schema.
	ProviderBody hcl.Body
	EvalCtx      *hcl.EvalContext

	DeclRange hcl.Range
	// AttrRanges maps pool attribute paths ("port", "model.ref",
	// "health.interval", "llamacpp") to their source ranges, so plan and
	// apply can point errors at the right line.
	AttrRanges map[string]hcl.Range
	// SensitivePaths lists, sorted, the attribute paths whose value came
	// from a sensitive variable: "env.HF_TOKEN" for one map key, "flags"
	// or "model.ref" for a whole attribute. Plan redacts them.
	SensitivePaths []string
}

// Range returns the range of the attribute at path, or the pool's
// declaration range when the attribute is not set.
func (p *Pool) Range(path string) hcl.Range {
	if r, ok := p.AttrRanges[path]; ok {
		return r
	}
	return p.DeclRange
}

// Model is the pool's model {} block.
type Model struct {
	Ref    string
	SHA256 string
}

// Health is the pool's health {} block, defaults filled in.
type Health struct {
	Path         string        // "/health"
	Interval     time.Duration // 100ms
	StartTimeout time.Duration // 120s
	LiveInterval time.Duration // 5s
	Failures     int           // 3
	Smoke        *Smoke        // nil: no smoke completion
}

// Smoke is health's smoke {} block: a replica is ready only once a real
// completion of Prompt (NPredict tokens, within Timeout) matches Expect.
type Smoke struct {
	Prompt   string
	NPredict int           // 4
	Expect   string        // a regular expression; "" accepts any completion
	Timeout  time.Duration // 20s
}

// DefaultSmoke holds the smoke block's defaults.
var DefaultSmoke = Smoke{NPredict: 4, Timeout: 20 * time.Second}

// Restart policies.
const (
	RestartAlways    = "always"
	RestartOnFailure = "on-failure"
	RestartNever     = "never"
)

// Restart is the pool's restart {} block, defaults filled in.
type Restart struct {
	Policy         string        // always
	InitialBackoff time.Duration // 1s
	MaxBackoff     time.Duration // 60s
	Multiplier     float64       // 2
	Jitter         float64       // 0.1
	ResetAfter     time.Duration // 5m
	MaxFailures    int           // 5
	Cooldown       time.Duration // 5m; 0 = wait for the next apply
}

// Drain is the pool's drain {} block.
type Drain struct {
	Deadline time.Duration // 30s
	// KillTimeout bounds a stop: after SIGTERM the engine has this long to
	// exit before SIGKILL (llama-server can hang on SIGTERM while a client
	// holds a request open).
	KillTimeout time.Duration // 10s
}

// Update strategies.
const (
	CreateBeforeDestroy = "create_before_destroy"
	DrainFirst          = "drain_first"
)

// Update is the pool's update {} block.
type Update struct {
	Strategy string // create_before_destroy
}

// Defaults, as DESIGN §2 documents them.
var (
	DefaultHealth = Health{
		Path: "/health", Interval: 100 * time.Millisecond, StartTimeout: 120 * time.Second,
		LiveInterval: 5 * time.Second, Failures: 3,
	}
	DefaultRestart = Restart{
		Policy: RestartAlways, InitialBackoff: time.Second, MaxBackoff: 60 * time.Second,
		Multiplier: 2, Jitter: 0.1, ResetAfter: 5 * time.Minute, MaxFailures: 5, Cooldown: 5 * time.Minute,
	}
	DefaultDrain  = Drain{Deadline: 30 * time.Second, KillTimeout: 10 * time.Second}
	DefaultUpdate = Update{Strategy: CreateBeforeDestroy}
)

const (
	DefaultStateDir = ".llorch"
	DefaultHost     = "127.0.0.1"
)
