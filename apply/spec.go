package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/handoff"
)

// recordPrepared maps the provider API's PreparedEngine to the persisted
// state.Prepared: the one place the two formats meet. Secret environment
// values, and values of env that came from sensitive variables, are
// recorded only as digests (as d.Spec records them); nothing else holds a
// sensitive value, which Scrub makes sure of.
func recordPrepared(fs afero.Fs, d *plan.Desired, pe *providers.PreparedEngine) *state.Prepared {
	out := &state.Prepared{
		BinaryPath:       pe.BinaryPath,
		Args:             make([]string, len(pe.Args)),
		Env:              maps.Clone(pe.Env),
		Host:             pe.Host,
		Port:             pe.Port,
		ModelPath:        pe.ModelPath,
		ModelSHA256:      pe.ModelSHA256,
		ModelRevision:    pe.ModelRevision,
		BinarySHA256:     pe.BinarySHA256,
		EngineVersion:    pe.EngineVersion,
		ProvisioningMode: pe.ProvisioningMode,
		DeviceMask:       pe.DeviceMask,
		HealthPath:       pe.HealthPath,
	}
	for i, a := range pe.Args {
		out.Args[i] = d.Scrub(a)
	}
	for k, v := range out.Env {
		if h := d.Spec.Env[k]; plan.IsRedacted(h) && h != v {
			out.Env[k] = h
		} else {
			out.Env[k] = d.Scrub(v)
		}
	}
	if len(pe.SecretEnv) > 0 {
		out.SecretEnvHashes = make(map[string]string, len(pe.SecretEnv))
		for k, v := range pe.SecretEnv {
			sum := sha256.Sum256([]byte(v))
			out.SecretEnvHashes[k] = "sha256:" + hex.EncodeToString(sum[:])
		}
	}
	if fi, err := fs.Stat(pe.BinaryPath); err == nil {
		out.BinarySize, out.BinaryMtime = fi.Size(), fi.ModTime().UTC()
	}
	if fi, err := fs.Stat(pe.ModelPath); err == nil {
		out.ModelSize, out.ModelMtime = fi.Size(), fi.ModTime().UTC()
	}
	return out
}

// cleanupRequest describes a recorded pool to its provider's Cleanup: the
// pool as it was applied and the engine that was prepared for it (secret
// environment values are not recorded, so they are not included).
func cleanupRequest(addr string, sp *state.Pool) providers.CleanupRequest {
	req := providers.CleanupRequest{Pool: providers.PoolSpec{Addr: addr}}
	if s := sp.Spec; s != nil {
		req.Pool = providers.PoolSpec{
			Addr: addr, Model: providers.ModelRef{Ref: s.Model.Ref, SHA256: s.Model.SHA256},
			Host: s.Host, Port: s.Port, Devices: s.Devices, Ctx: s.Ctx,
			Flags: s.Flags, Env: maps.Clone(s.Env), Replicas: s.Replicas,
		}
	}
	if pr := sp.Prepared; pr != nil {
		req.Prepared = &providers.PreparedEngine{
			BinaryPath: pr.BinaryPath, Args: append([]string(nil), pr.Args...), Env: maps.Clone(pr.Env),
			Host: pr.Host, Port: pr.Port, ModelPath: pr.ModelPath, ModelSHA256: pr.ModelSHA256,
			EngineVersion: pr.EngineVersion, ProvisioningMode: pr.ProvisioningMode,
			DeviceMask: pr.DeviceMask, HealthPath: pr.HealthPath,
		}
	}
	return req
}

// runDir says where one generation of a replica keeps its files.
func runDir(stateDir, poolID, replicaID string, generation int) string {
	name := poolID + "-" + replicaID
	if generation > 0 {
		name += "." + strconv.Itoa(generation)
	}
	return filepath.Join(stateDir, "run", name)
}

func handoffPath(handoffDir, poolID, replicaID string) string {
	return filepath.Join(handoffDir, handoff.FileName(poolID, replicaID))
}

// supervisorSpec is what one replica's supervisor runs: the prepared engine
// for this replica plus the pool's health, restart and drain settings. The
// engine's environment holds what the engine needs, secrets included (the
// spec file is the supervisor's alone, mode 0600); the handoff template,
// which every router reads, is built from the redacted spec, so a value
// from a sensitive variable is there only as its "sha256:…".
func supervisorSpec(d *plan.Desired, pe providers.PreparedEngine, dirs Dirs, generation int) supervisor.Spec {
	p := d.Pool
	env := maps.Clone(pe.Env)
	if env == nil {
		env = map[string]string{}
	}
	for k, v := range pe.SecretEnv {
		env[k] = v
	}
	healthPath := pe.HealthPath
	if healthPath == "" {
		healthPath = p.Health.Path
	}
	return supervisor.Spec{
		Addr:       p.Addr + "/" + pe.ReplicaID,
		PoolID:     p.ID,
		ReplicaID:  pe.ReplicaID,
		Binary:     pe.BinaryPath,
		Args:       pe.Args,
		Env:        env,
		ProbeToken: pe.ProbeToken,
		Host:       pe.Host,
		Port:       pe.Port,
		ModelPath:  pe.ModelPath,
		Protocol:   supervisorProtocol(pe.Protocol),
		Health: supervisor.HealthPolicy{
			Path:         healthPath,
			Interval:     p.Health.Interval,
			StartTimeout: p.Health.StartTimeout,
			LiveInterval: p.Health.LiveInterval,
			Failures:     p.Health.Failures,
			Smoke:        smokePolicy(p.Health.Smoke),
		},
		Restart: supervisor.RestartPolicy{
			Policy:         p.Restart.Policy,
			InitialBackoff: p.Restart.InitialBackoff,
			MaxBackoff:     p.Restart.MaxBackoff,
			Multiplier:     p.Restart.Multiplier,
			Jitter:         p.Restart.Jitter,
			ResetAfter:     p.Restart.ResetAfter,
			MaxFailures:    p.Restart.MaxFailures,
			Cooldown:       p.Restart.Cooldown,
		},
		Drain:       supervisor.DrainPolicy{Deadline: p.Drain.Deadline},
		StopGrace:   p.Drain.KillTimeout,
		RunDir:      runDir(dirs.State, p.ID, pe.ReplicaID, generation),
		HandoffPath: handoffPath(dirs.Handoff, p.ID, pe.ReplicaID),
		Handoff: handoff.File{
			Engine:           p.Engine,
			EngineVersion:    pe.EngineVersion,
			ProvisioningMode: pe.ProvisioningMode,
			PoolID:           p.ID,
			ReplicaID:        pe.ReplicaID,
			Model:            handoff.Model{Ref: d.Spec.Model.Ref, Path: d.Scrub(pe.ModelPath), SHA256: pe.ModelSHA256},
			Flags:            append([]string{}, d.Spec.Flags...),
			DeviceMask:       pe.DeviceMask,
			Labels:           maps.Clone(d.Spec.Labels),
		},
	}
}

// supervisorProtocol maps the provider API's EngineProtocol to the
// supervisor's; nil stays nil, which the supervisor reads as
// llama-server's protocol (what a plugin written before EngineProtocol
// expects).
func supervisorProtocol(p *providers.EngineProtocol) *supervisor.Protocol {
	if p == nil {
		return nil
	}
	out := &supervisor.Protocol{
		ReadyStatus:          slices.Clone(p.Readiness.Ready),
		LoadingStatus:        slices.Clone(p.Readiness.Loading),
		StopSignal:           p.Stop.Signal,
		RepeatStopForcesExit: p.Stop.RepeatForcesExit,
	}
	if id := p.Identity; id != nil {
		out.Identity = &supervisor.IdentityProbe{Path: id.Path, Field: id.Field, Expect: id.Expect}
	}
	for _, f := range p.InFlight {
		out.InFlight = append(out.InFlight, supervisor.InFlightProbe{Path: f.Path, CountTrue: f.CountTrue, Gauges: slices.Clone(f.Gauges)})
	}
	for _, c := range p.LogCauses {
		out.LogCauses = append(out.LogCauses, supervisor.LogCause{Cause: supervisor.Cause(c.Cause), Contains: slices.Clone(c.Contains)})
	}
	if c := p.Completion; c != nil {
		out.Completion = &supervisor.CompletionProbe{Path: c.Path, PromptField: c.PromptField,
			MaxTokensField: c.MaxTokensField, Fixed: maps.Clone(c.Fixed), TextField: c.TextField}
	}
	return out
}

// portPicker hands out free ports to replicas without a fixed one. A port
// is taken only once the engine listens on it, a while after it was picked,
// and the kernel may offer the same free port to two binds in a row: so a
// port handed out once in this run is never handed out again.
type portPicker struct {
	free func(host string) (int, error)
	mu   sync.Mutex
	used map[int]bool
}

func (pp *portPicker) pick(host string) (int, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for range 1000 {
		port, err := pp.free(host)
		if err != nil {
			return 0, err
		}
		if !pp.used[port] {
			if pp.used == nil {
				pp.used = map[int]bool{}
			}
			pp.used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("finding a free port on %s: the kernel keeps offering ports already given to other replicas of this apply; widen net.ipv4.ip_local_port_range or give pools fixed ports", host)
}

// freePort asks the kernel for a port nobody listens on. The port is free
// when this returns; the supervisor checks again before it spawns.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// killTimeout is how long a recorded pool's engines get between SIGTERM and
// SIGKILL (drain.kill_timeout as it was applied).
func killTimeout(sp *state.Pool) time.Duration {
	if sp != nil && sp.Spec != nil {
		if d, err := time.ParseDuration(sp.Spec.Drain.KillTimeout); err == nil && d > 0 {
			return d
		}
	}
	return config.DefaultDrain.KillTimeout
}

func smokePolicy(s *config.Smoke) *supervisor.SmokePolicy {
	if s == nil {
		return nil
	}
	return &supervisor.SmokePolicy{Prompt: s.Prompt, NPredict: s.NPredict, Expect: s.Expect, Timeout: s.Timeout}
}
