package apply_test

import (
	"testing"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/supervisor"
)

// The configuration's defaults are what a pool gets; the supervisor fills
// a spec's zero fields with its own. They must be the same values, or a
// spec.json written by hand (or by an older build) would behave otherwise.
func TestConfigAndSupervisorDefaultsAgree(t *testing.T) {
	d := supervisor.Spec{}.WithDefaults()
	h := config.DefaultHealth
	got := supervisor.HealthPolicy{Path: d.Health.Path, Interval: d.Health.Interval, StartTimeout: d.Health.StartTimeout,
		LiveInterval: d.Health.LiveInterval, Failures: d.Health.Failures}
	want := supervisor.HealthPolicy{Path: h.Path, Interval: h.Interval, StartTimeout: h.StartTimeout,
		LiveInterval: h.LiveInterval, Failures: h.Failures}
	if got != want {
		t.Errorf("health defaults: supervisor %+v, config %+v", got, want)
	}
	if d.Drain.Deadline != config.DefaultDrain.Deadline || d.StopGrace != config.DefaultDrain.KillTimeout {
		t.Errorf("drain deadline %s and stop grace %s; config says %s and %s",
			d.Drain.Deadline, d.StopGrace, config.DefaultDrain.Deadline, config.DefaultDrain.KillTimeout)
	}
	if d.Host != config.DefaultHost || d.Restart.Policy != config.DefaultRestart.Policy {
		t.Errorf("host %q, restart policy %q; config says %q, %q", d.Host, d.Restart.Policy, config.DefaultHost, config.DefaultRestart.Policy)
	}
	// The configuration's restart defaults are a policy the supervisor runs.
	r := config.DefaultRestart
	p := supervisor.RestartPolicy{Policy: r.Policy, InitialBackoff: r.InitialBackoff, MaxBackoff: r.MaxBackoff, Multiplier: r.Multiplier,
		Jitter: r.Jitter, ResetAfter: r.ResetAfter, MaxFailures: r.MaxFailures, Cooldown: r.Cooldown}
	if err := p.Validate(); err != nil {
		t.Errorf("config.DefaultRestart is not a valid supervisor policy: %v", err)
	}
}
