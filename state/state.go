package state

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"time"
)

// FormatVersion is the state file format this build reads and writes.
// A file with a higher format_version is refused, never overwritten.
const FormatVersion = 1

// State is the registry: every pool llorch manages and the replicas it runs.
type State struct {
	FormatVersion int              `json:"format_version"`
	Lineage       string           `json:"lineage"` // uuid fixed at creation
	Serial        uint64           `json:"serial"`  // +1 on every write
	LlorchVersion string           `json:"llorch_version"`
	Pools         map[string]*Pool `json:"pools"` // keyed by address: "pool.chat", `pool.embed["bge"]`
}

// New returns an empty state with the given lineage.
func New(lineage string) *State {
	return &State{FormatVersion: FormatVersion, Lineage: lineage, Pools: map[string]*Pool{}}
}

// Addrs returns the pool addresses, sorted.
func (s *State) Addrs() []string {
	addrs := make([]string, 0, len(s.Pools))
	for a := range s.Pools {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	return addrs
}

// RemovePool forgets the pool at addr and reports whether it was recorded.
func (s *State) RemovePool(addr string) bool {
	if _, ok := s.Pools[addr]; !ok {
		return false
	}
	delete(s.Pools, addr)
	return true
}

// DeepCopy returns a copy that shares nothing with s. Nil and empty
// slices and maps stay as they were (an empty Devices means CPU only).
func (s *State) DeepCopy() *State {
	if s == nil {
		return nil
	}
	out := *s
	out.Pools = make(map[string]*Pool, len(s.Pools))
	for addr, p := range s.Pools {
		out.Pools[addr] = p.DeepCopy()
	}
	return &out
}

// DeepCopy returns a copy of p that shares nothing with it.
func (p *Pool) DeepCopy() *Pool {
	if p == nil {
		return nil
	}
	out := *p
	out.Spec = p.Spec.DeepCopy()
	out.Prepared = p.Prepared.DeepCopy()
	if p.Timings != nil {
		out.Timings = &Timings{StartsMS: slices.Clone(p.Timings.StartsMS), StopsMS: slices.Clone(p.Timings.StopsMS)}
	}
	if p.Replicas != nil {
		out.Replicas = make([]*Replica, len(p.Replicas))
		for i, r := range p.Replicas {
			if r != nil {
				c := *r // only plain values
				out.Replicas[i] = &c
			}
		}
	}
	return &out
}

// DeepCopy returns a copy of s that shares nothing with it.
func (s *Spec) DeepCopy() *Spec {
	if s == nil {
		return nil
	}
	out := *s
	out.Devices = slices.Clone(s.Devices)
	out.Flags = slices.Clone(s.Flags)
	out.Env = maps.Clone(s.Env)
	out.Labels = maps.Clone(s.Labels)
	out.Provider = slices.Clone(s.Provider)
	if s.Health.Smoke != nil {
		sm := *s.Health.Smoke
		out.Health.Smoke = &sm
	}
	return &out
}

// DeepCopy returns a copy of p that shares nothing with it.
func (p *Prepared) DeepCopy() *Prepared {
	if p == nil {
		return nil
	}
	out := *p
	out.Args = slices.Clone(p.Args)
	out.Env = maps.Clone(p.Env)
	out.SecretEnvHashes = maps.Clone(p.SecretEnvHashes)
	return &out
}

// Pool is one recorded pool.
type Pool struct {
	Engine   string     `json:"engine"`
	SpecHash string     `json:"spec_hash"` // "sha256:…" of Spec's canonical JSON
	Spec     *Spec      `json:"spec"`      // normalized desired spec, sensitive values hashed
	Prepared *Prepared  `json:"prepared,omitempty"`
	Replicas []*Replica `json:"replicas"`
	// Timings are how long this pool's engines took to start and to stop,
	// which plan turns into the downtime a change causes.
	Timings *Timings `json:"timings,omitempty"`
}

// Timings keep the last TimingsKept durations, newest last, in
// milliseconds: starts from spawn to ready, stops from the drain or stop
// request to the engine gone (draining included: the replica no longer
// serves from the moment its handoff file goes).
type Timings struct {
	StartsMS []int `json:"starts_ms,omitempty"`
	StopsMS  []int `json:"stops_ms,omitempty"`
}

// TimingsKept is how many starts and stops a pool remembers.
const TimingsKept = 5

// RecordStart remembers one engine start of the pool.
func (p *Pool) RecordStart(d time.Duration) {
	if p.Timings == nil {
		p.Timings = &Timings{}
	}
	p.Timings.StartsMS = keepLast(p.Timings.StartsMS, d)
}

// RecordStop remembers one stop of an engine of the pool.
func (p *Pool) RecordStop(d time.Duration) {
	if p.Timings == nil {
		p.Timings = &Timings{}
	}
	p.Timings.StopsMS = keepLast(p.Timings.StopsMS, d)
}

func keepLast(ms []int, d time.Duration) []int {
	ms = append(ms, int(d.Milliseconds()))
	if len(ms) > TimingsKept {
		ms = slices.Clone(ms[len(ms)-TimingsKept:])
	}
	return ms
}

// Replica returns the replica with id, or nil.
func (p *Pool) Replica(id string) *Replica {
	for _, r := range p.Replicas {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// RemoveReplica forgets the replica with id and reports whether it was
// recorded. The order of the others is kept.
func (p *Pool) RemoveReplica(id string) bool {
	for i, r := range p.Replicas {
		if r != nil && r.ID == id {
			p.Replicas = append(p.Replicas[:i:i], p.Replicas[i+1:]...)
			return true
		}
	}
	return false
}

// Spec is the normalized desired spec of a pool as it was last applied.
// Durations are Go duration strings ("100ms"); defaults are filled in, so
// that a change of a default shows up as a change.
type Spec struct {
	Engine   string            `json:"engine"`
	Replicas int               `json:"replicas"`
	Model    ModelSpec         `json:"model"`
	Host     string            `json:"host"`
	Port     int               `json:"port"`    // 0 = ports picked at apply time
	Devices  []int             `json:"devices"` // null = engine default, [] = CPU only
	Ctx      int               `json:"ctx"`     // 0 = engine default
	Flags    []string          `json:"flags"`
	Env      map[string]string `json:"env"`
	Labels   map[string]string `json:"labels"`
	Health   HealthSpec        `json:"health"`
	Restart  RestartSpec       `json:"restart"`
	Drain    DrainSpec         `json:"drain"`
	Update   UpdateSpec        `json:"update"`
	// Provider is the pool's provider block (e.g. llamacpp {}) as JSON of
	// its cty value, with every sensitive attribute replaced by "sha256:…".
	Provider json.RawMessage `json:"provider,omitempty"`
}

// ModelSpec is the pool's model block.
type ModelSpec struct {
	Ref    string `json:"ref"`
	SHA256 string `json:"sha256,omitempty"`
}

// HealthSpec is the pool's health block.
type HealthSpec struct {
	Path         string     `json:"path"`
	Interval     string     `json:"interval"`
	StartTimeout string     `json:"start_timeout"`
	LiveInterval string     `json:"live_interval"`
	Failures     int        `json:"failures"`
	Smoke        *SmokeSpec `json:"smoke,omitempty"` // absent: no smoke completion (and the spec hash of pools without one is unchanged)
}

// SmokeSpec is health's smoke block.
type SmokeSpec struct {
	Prompt   string `json:"prompt"`
	NPredict int    `json:"n_predict"`
	Expect   string `json:"expect,omitempty"`
	Timeout  string `json:"timeout"`
}

// RestartSpec is the pool's restart block.
type RestartSpec struct {
	Policy         string  `json:"policy"`
	InitialBackoff string  `json:"initial_backoff"`
	MaxBackoff     string  `json:"max_backoff"`
	Multiplier     float64 `json:"multiplier"`
	Jitter         float64 `json:"jitter"`
	ResetAfter     string  `json:"reset_after"`
	MaxFailures    int     `json:"max_failures"`
	Cooldown       string  `json:"cooldown"`
}

// DrainSpec is the pool's drain block.
type DrainSpec struct {
	Deadline    string `json:"deadline"`
	KillTimeout string `json:"kill_timeout"`
}

// UpdateSpec is the pool's update block.
type UpdateSpec struct {
	Strategy string `json:"strategy"` // create_before_destroy | drain_first
}

// Prepared is the persisted form of the engine a provider prepared for the
// pool. It is versioned with the state file, separately from the provider
// API's PreparedEngine; secret environment values are never recorded.
type Prepared struct {
	BinaryPath       string            `json:"binary_path"`
	Args             []string          `json:"args"`
	Env              map[string]string `json:"env,omitempty"`
	SecretEnvHashes  map[string]string `json:"secret_env,omitempty"` // name → "sha256:…"
	Host             string            `json:"host"`
	Port             int               `json:"port"`
	ModelPath        string            `json:"model_path"`
	ModelSHA256      string            `json:"model_sha256,omitempty"`
	ModelRevision    string            `json:"model_revision,omitempty"` // the commit an hf: ref resolved to
	EngineVersion    string            `json:"engine_version"`
	ProvisioningMode string            `json:"provisioning_mode,omitempty"`
	DeviceMask       string            `json:"device_mask"`
	HealthPath       string            `json:"health_path,omitempty"`
	BinarySHA256     string            `json:"binary_sha256,omitempty"`
	// The sizes and mtimes let refresh notice a binary or model that may
	// have changed on disk after apply without rehashing gigabytes; the
	// digests then tell whether the bytes did.
	BinarySize  int64     `json:"binary_size,omitempty"`
	BinaryMtime time.Time `json:"binary_mtime,omitzero"`
	ModelSize   int64     `json:"model_size,omitempty"`
	ModelMtime  time.Time `json:"model_mtime,omitzero"`
}

// Replica statuses as recorded in state (the supervisor's states, DESIGN §6).
const (
	StatusStarting   = "starting"
	StatusReady      = "ready"
	StatusUnhealthy  = "unhealthy"
	StatusRestarting = "restarting"
	StatusBackoff    = "backoff"
	StatusFailed     = "failed"
	StatusDraining   = "draining"
	StatusStopped    = "stopped"
	// StatusExited is what refresh records for a replica whose supervisor
	// is gone (killed, or the host rebooted): nothing keeps it up.
	StatusExited = "exited"
)

// Replica is one engine process of a pool.
type Replica struct {
	ID            string    `json:"id"` // r0, r1, …
	Port          int       `json:"port"`
	PID           int       `json:"pid"`
	SupervisorPID int       `json:"supervisor_pid"`
	Status        string    `json:"status"`
	RunDir        string    `json:"run_dir,omitempty"` // <state_dir>/run/<pool>-<replica>
	Handoff       string    `json:"handoff,omitempty"` // path of the handoff file
	StartedAt     time.Time `json:"started_at,omitzero"`
	ReadyAt       time.Time `json:"ready_at,omitzero"`
	Restarts      int       `json:"restarts"`
	LastError     string    `json:"last_error"`
	// Generation counts replacements of this replica id (create_before_destroy
	// runs the new engine in a fresh run dir before the old one is stopped).
	Generation int `json:"generation,omitempty"`
	// The successor being started for this replica (create_before_destroy,
	// drain_first), recorded before it is spawned: an apply killed before
	// it recorded the outcome leaves a supervisor that the next run finds
	// here and adopts when it serves, instead of stopping it as unknown.
	SuccessorRunDir     string `json:"successor_run_dir,omitempty"`
	SuccessorPort       int    `json:"successor_port,omitempty"`
	SuccessorGeneration int    `json:"successor_generation,omitempty"`
}

// HasSuccessor reports whether a successor was being started when the
// state was last written.
func (r *Replica) HasSuccessor() bool { return r.SuccessorRunDir != "" }

// ClearSuccessor forgets the successor intent.
func (r *Replica) ClearSuccessor() {
	r.SuccessorRunDir, r.SuccessorPort, r.SuccessorGeneration = "", 0, 0
}
