package apply_test

import (
	"context"
	"errors"
	"testing"

	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
)

// A label-only change pushes the health path the engine was launched with
// (the provider's PreparedEngine.HealthPath wins over the pool's
// health.path), so the supervisor keeps probing the right endpoint.
func TestSettingsPushKeepsTheLaunchedHealthPath(t *testing.T) {
	e := newEnv(t)
	e.prov.EnsureFunc = func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		pe := providertest.DefaultEngine(req.Pool)
		pe.HealthPath = "/v1/health"
		return &pe, nil
	}
	st := e.converge(configOf(pool("pool.chat", labels("team", "a"))))
	launched := e.fake.Launches()[0].Health.Path
	if launched != "/v1/health" {
		t.Fatalf("launched with health path %q, want the provider's /v1/health", launched)
	}
	e.converge(configOf(pool("pool.chat", labels("team", "b"))))
	pushed := e.fake.Pushes()[replicaOf(t, st, "pool.chat", "r0").RunDir]
	if len(pushed) != 1 {
		t.Fatalf("settings pushed %d times, want once", len(pushed))
	}
	if got := pushed[0].Health.Path; got != launched {
		t.Errorf("pushed health path %q, but the engine was launched probing %q", got, launched)
	}
}

// When a supervisor refuses the new settings, the new spec is not
// recorded, so the next plan shows the change again and retries it.
func TestFailedSettingsPushIsRetriedByTheNextPlan(t *testing.T) {
	e := newEnv(t)
	st := e.converge(configOf(pool("pool.chat", replicas(2), labels("team", "a"))))
	r0 := replicaOf(t, st, "pool.chat", "r0")
	e.fake.UpdateErr[r0.RunDir] = errors.New("writing spec.json: read-only file system")
	cfg := configOf(pool("pool.chat", replicas(2), labels("team", "b")))
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	if err == nil {
		t.Fatal("Run succeeded although r0 refused the new settings")
	}
	containsAll(t, "error", err.Error(), "pool.chat/r0", "writing spec.json: read-only file system")
	if p := e.plan(cfg, plan.Options{}); p.Empty() {
		t.Errorf("the next plan shows no changes, but r0 still runs with the old labels")
	}
}
