package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/internal/supervisor/restart"
)

// Defaults for Spec fields left zero (DESIGN §2 shows the same values).
const (
	DefaultHost          = "127.0.0.1"
	DefaultHealthPath    = "/health"
	DefaultInterval      = 100 * time.Millisecond
	DefaultStartTimeout  = 120 * time.Second
	DefaultLiveInterval  = 5 * time.Second
	DefaultFailures      = 3
	DefaultStopGrace     = 10 * time.Second
	DefaultDrainDeadline = 30 * time.Second
)

// Names of the files in a run directory.
const (
	SpecFile          = "spec.json"
	StatusFile        = "status.json"
	SupervisorPIDFile = "supervisor.pid"
	EnginePIDFile     = "engine.pid"
	EngineLogFile     = "engine.log"
	SupervisorLogFile = "supervisor.log"
	SocketFile        = "supervisor.sock"
	// SocketPathFile holds the socket's path when the run directory's path
	// is too long for a unix socket address.
	SocketPathFile = "socket"
)

// WithDefaults returns s with every zero field that has a default filled
// in. Zero always means "the default" in a Spec, never "none".
func (s Spec) WithDefaults() Spec {
	if s.Host == "" {
		s.Host = DefaultHost
	}
	h := &s.Health
	if h.Path == "" {
		h.Path = DefaultHealthPath
	}
	if h.Interval == 0 {
		h.Interval = DefaultInterval
	}
	if h.StartTimeout == 0 {
		h.StartTimeout = DefaultStartTimeout
	}
	if h.LiveInterval == 0 {
		h.LiveInterval = DefaultLiveInterval
	}
	if h.Failures == 0 {
		h.Failures = DefaultFailures
	}
	if s.Restart.Policy == "" {
		s.Restart.Policy = restart.Always
	}
	if s.Drain.Deadline == 0 {
		s.Drain.Deadline = DefaultDrainDeadline
	}
	if s.StopGrace == 0 {
		s.StopGrace = DefaultStopGrace
	}
	if s.LogMaxBytes == 0 {
		s.LogMaxBytes = DefaultLogMaxBytes
	}
	if s.LogKeep == 0 {
		s.LogKeep = DefaultLogKeep
	}
	return s
}

// Validate reports every field of s (after WithDefaults) a supervisor
// cannot work with.
func (s Spec) Validate() error {
	var errs []error
	if s.Binary == "" {
		errs = append(errs, errors.New("binary is empty: the spec must name the engine executable"))
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is not between 1 and 65535", s.Port))
	}
	if s.RunDir == "" {
		errs = append(errs, errors.New("run_dir is empty"))
	}
	if !strings.HasPrefix(s.Health.Path, "/") {
		errs = append(errs, fmt.Errorf("health path %q must start with /", s.Health.Path))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"health interval", s.Health.Interval}, {"health start_timeout", s.Health.StartTimeout},
		{"health live_interval", s.Health.LiveInterval}, {"drain deadline", s.Drain.Deadline}, {"stop grace", s.StopGrace},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %s; it must be positive", d.name, d.v))
		}
	}
	if s.Health.Failures < 0 {
		errs = append(errs, fmt.Errorf("health failures %d must be positive", s.Health.Failures))
	}
	if s.LogMaxBytes < 0 || s.LogKeep < 0 {
		errs = append(errs, fmt.Errorf("log_max_bytes %d and log_keep %d must not be negative", s.LogMaxBytes, s.LogKeep))
	}
	if err := s.Restart.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// WithDefaults returns s with every zero field that has a default filled
// in, as Spec.WithDefaults does for the same fields.
func (s Settings) WithDefaults() Settings {
	d := Spec{Health: s.Health, Restart: s.Restart, Drain: s.Drain}.WithDefaults()
	s.Health, s.Restart, s.Drain = d.Health, d.Restart, d.Drain
	return s
}

// Validate reports every field of s (after WithDefaults) a supervisor
// cannot work with: Spec.Validate's checks and messages for these fields,
// run on a spec whose other fields are valid.
func (s Settings) Validate() error {
	return Spec{Binary: "engine", Port: 1, RunDir: "/", Health: s.Health, Restart: s.Restart, Drain: s.Drain}.Validate()
}

// withSettings returns s with its settings replaced by set.
func (s Spec) withSettings(set Settings) Spec {
	s.Health, s.Restart, s.Drain = set.Health, set.Restart, set.Drain
	s.Handoff.Labels = maps.Clone(set.Labels)
	return s
}

// writeSpec replaces runDir/spec.json atomically (mode 0600: the spec may
// hold secret environment values).
func writeSpec(fs afero.Fs, s Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding supervisor spec: %w", err)
	}
	return atomicfile.Write(fs, filepath.Join(s.RunDir, SpecFile), append(b, '\n'), 0o600)
}

// ReadSpec reads runDir/spec.json. The spec's RunDir becomes runDir, the
// directory the supervisor was actually given.
func ReadSpec(fs afero.Fs, runDir string) (Spec, error) {
	path := filepath.Join(runDir, SpecFile)
	b, err := afero.ReadFile(fs, path)
	if err != nil {
		if os.IsNotExist(err) {
			return Spec{}, fmt.Errorf("no supervisor spec at %s: %w", path, err)
		}
		return Spec{}, fmt.Errorf("reading supervisor spec: %w", err)
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return Spec{}, fmt.Errorf("supervisor spec %s is not valid JSON: %w", path, err)
	}
	s.RunDir = runDir
	return s, nil
}
