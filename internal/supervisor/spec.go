package supervisor

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/llorch/llorch/internal/supervisor/restart"
	"github.com/llorch/llorch/state/handoff"
)

// Spec is everything one replica's supervisor needs. apply writes it to
// <RunDir>/spec.json (mode 0600: it may hold secret environment values)
// before starting `llorch supervise <RunDir>`.
type Spec struct {
	Addr      string `json:"addr"` // "pool.chat/r0"
	PoolID    string `json:"pool_id"`
	ReplicaID string `json:"replica_id"`

	Binary string            `json:"binary"`
	Args   []string          `json:"args"`
	Env    map[string]string `json:"env"` // merged onto the supervisor's environment; may hold secrets
	// ProbeToken is sent as "Authorization: Bearer …" on /slots and /metrics
	// (llama-server with --api-key answers 401 there otherwise).
	ProbeToken string `json:"probe_token,omitempty"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	// ModelPath lets the readiness check confirm the answering server is the
	// one spawned (llama-server /props names its model).
	ModelPath string `json:"model_path"`
	// Protocol is how to probe, drain and stop the engine; nil (a spec
	// written before providers described their engines) is
	// LegacyProtocol.
	Protocol *Protocol `json:"protocol,omitempty"`
	// Adopt, set by `llorch import`, is a running engine to watch instead
	// of spawning the first one; later starts spawn Binary as usual.
	Adopt *Adoption `json:"adopt,omitempty"`

	Health  HealthPolicy  `json:"health"`
	Restart RestartPolicy `json:"restart"`
	Drain   DrainPolicy   `json:"drain"`
	// StopGrace is how long a SIGTERM may take before SIGKILL.
	StopGrace time.Duration `json:"stop_grace"`

	RunDir      string       `json:"run_dir"`
	HandoffPath string       `json:"handoff_path"` // "" = write none
	Handoff     handoff.File `json:"handoff"`      // template: pid, url, ready_at, draining filled in
	// LogMaxBytes rotates engine.log at this size, keeping LogKeep old files.
	LogMaxBytes int64 `json:"log_max_bytes"`
	LogKeep     int   `json:"log_keep"`
}

// protocol is the engine's protocol, LegacyProtocol when the spec names
// none.
func (s Spec) protocol() Protocol {
	if s.Protocol == nil {
		return LegacyProtocol(s.ModelPath)
	}
	return *s.Protocol
}

// target is what probes of the spec's engine ask (the pid is the running
// engine's, filled in per probe).
func (s Spec) target() Target {
	host := s.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // a wildcard bind is reached on loopback
	}
	return Target{
		BaseURL:    "http://" + net.JoinHostPort(host, strconv.Itoa(s.Port)),
		Host:       s.Host,
		Port:       s.Port,
		HealthPath: s.Health.Path,
		Token:      s.ProbeToken,
		Protocol:   s.protocol(),
	}
}

// HealthPolicy mirrors the pool's health block.
type HealthPolicy struct {
	Path         string        `json:"path"`
	Interval     time.Duration `json:"interval"`
	StartTimeout time.Duration `json:"start_timeout"`
	LiveInterval time.Duration `json:"live_interval"`
	Failures     int           `json:"failures"`
	// Smoke, when set, makes readiness wait for a real completion.
	Smoke *SmokePolicy `json:"smoke,omitempty"`
}

// SmokePolicy is health's smoke block: once /health says 200, the engine
// is ready only when a completion of Prompt (NPredict tokens, within
// Timeout) matches Expect (a regular expression; "" accepts any answer).
// A completion that fails or does not match is a failed start.
type SmokePolicy struct {
	Prompt   string        `json:"prompt"`
	NPredict int           `json:"n_predict"`
	Expect   string        `json:"expect,omitempty"`
	Timeout  time.Duration `json:"timeout"`
}

// RestartPolicy mirrors the pool's restart block: restart.Policy, the
// type the restart tracker runs on, under the name the spec uses.
type RestartPolicy = restart.Policy

// DrainPolicy mirrors the pool's drain block.
type DrainPolicy struct {
	Deadline time.Duration `json:"deadline"`
}

// Settings are the parts of a Spec that change in place, without
// restarting the engine (DESIGN §4: labels and the health, restart and
// drain settings are updates in place). They replace the spec's wholesale,
// and as in a Spec a zero field means its default, not "unchanged". Labels
// become the handoff file's labels.
type Settings struct {
	Health  HealthPolicy      `json:"health"`
	Restart RestartPolicy     `json:"restart"`
	Drain   DrainPolicy       `json:"drain"`
	Labels  map[string]string `json:"labels"`
}

// State is a replica's lifecycle state (DESIGN §6):
// starting → ready → (unhealthy → restarting) → backoff → failed | draining → stopped.
type State string

const (
	Starting   State = "starting"
	Ready      State = "ready"
	Unhealthy  State = "unhealthy"
	Restarting State = "restarting"
	Backoff    State = "backoff"
	Failed     State = "failed"
	Draining   State = "draining"
	Stopped    State = "stopped"
)

// Status is a supervisor's snapshot, served on its socket and mirrored
// atomically to <RunDir>/status.json.
type Status struct {
	Addr          string    `json:"addr"`
	State         State     `json:"state"`
	PID           int       `json:"pid"` // engine pid, 0 when not running
	SupervisorPID int       `json:"supervisor_pid"`
	Port          int       `json:"port"`
	Restarts      int       `json:"restarts"`
	LastError     string    `json:"last_error"`
	StartedAt     time.Time `json:"started_at,omitzero"`
	ReadyAt       time.Time `json:"ready_at,omitzero"`
	NextRestartAt time.Time `json:"next_restart_at,omitzero"`
	UpdatedAt     time.Time `json:"updated_at"`

	// EngineStartTicks is the engine's start time (field 22 of
	// /proc/PID/stat, clock ticks since boot), which tells the engine from
	// a later process that reuses its pid; 0 when not running or unknown.
	EngineStartTicks uint64 `json:"engine_start_ticks,omitempty"`

	// Cause classifies the last end of an engine that did not serve
	// (a Cause value) and CauseLine is the log line that proved it; both
	// are cleared when an engine becomes ready.
	Cause     string `json:"cause,omitempty"`
	CauseLine string `json:"cause_line,omitempty"`

	// While draining: DrainEndsAt is when the drain deadline stops the
	// engine, and InFlight the requests it had in flight at the last look
	// (InFlightUnknown when it reports no counts). DrainCutOff is set
	// when the deadline, not the end of the work, stopped it: InFlight
	// requests were cut off.
	DrainEndsAt time.Time `json:"drain_ends_at,omitzero"`
	InFlight    int       `json:"in_flight,omitempty"`
	DrainCutOff bool      `json:"drain_cut_off,omitempty"`
}

// InFlightUnknown is Status.InFlight for an engine that gives no counts.
const InFlightUnknown = -1

// Client talks to one running supervisor over its unix socket.
type Client interface {
	Status(ctx context.Context) (Status, error)
	// Drain marks the replica draining, waits for in-flight requests to end
	// (or the drain deadline), then stops the engine. It returns when the
	// engine has stopped.
	Drain(ctx context.Context) error
	// DrainWithin is Drain with deadline d instead of the spec's (0: the
	// spec's), for `llorch drain -deadline`. It returns the status the
	// drain ended in: whether the deadline cut requests off.
	DrainWithin(ctx context.Context, d time.Duration) (Status, error)
	// Stop stops the engine (SIGTERM to its process group, SIGKILL after
	// grace) and ends the supervisor. It returns when both are gone.
	Stop(ctx context.Context, grace time.Duration) error
	// Update applies new settings in place: the engine keeps running (its
	// pid does not change), later probes, restart decisions and drains
	// follow the new settings, the labels reach the handoff file at once,
	// and spec.json records them.
	Update(ctx context.Context, s Settings) error
	Close() error
}

// Launcher starts detached supervisors and reattaches to running ones.
type Launcher interface {
	// Launch writes spec to spec.RunDir, starts `llorch supervise` in its own
	// session, and waits until the replica is ready (health gate) or failed.
	// On failure nothing is left running and the error carries the engine's
	// last log lines.
	Launch(ctx context.Context, spec Spec) (Client, Status, error)
	// Attach connects to the supervisor running in runDir.
	Attach(ctx context.Context, runDir string) (Client, error)
}
