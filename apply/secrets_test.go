package apply_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
)

// A value from a sensitive variable reaches the engine (its environment)
// and nothing anyone else reads: the state records its hash, the handoff
// template and the settings pushed to supervisors hold the redacted spec,
// and what the provider says about it is scrubbed.
func TestSensitiveValuesReachOnlyTheEngine(t *testing.T) {
	const secret = "S3KR1T-value-4242"
	e := newEnv(t)
	e.prov.Events = []providers.Event{{Stage: "download", Message: "downloading https://h/m.gguf?token=" + secret}}
	sensitive := func(p *config.Pool) {
		p.Env = map[string]string{"MY_TOKEN": secret, "PLAIN": "visible"}
		p.Labels = map[string]string{"team": "search", "token": secret}
		p.SensitivePaths = []string{"env.MY_TOKEN", "labels.token"}
	}
	cfg := configOf(pool("pool.chat", sensitive))
	st := e.converge(cfg)

	launches := e.fake.Launches()
	if len(launches) != 1 {
		t.Fatalf("%d launches, want 1", len(launches))
	}
	spec := launches[0]
	if spec.Env["MY_TOKEN"] != secret || spec.Env["PLAIN"] != "visible" {
		t.Errorf("engine environment %v: the engine must get the value itself", spec.Env)
	}
	if v := spec.Handoff.Labels["token"]; !plan.IsRedacted(v) || spec.Handoff.Labels["team"] != "search" {
		t.Errorf("handoff labels %v, want token as its sha256 and team as written", spec.Handoff.Labels)
	}
	pr := st.Pools["pool.chat"].Prepared
	if v := pr.Env["MY_TOKEN"]; !plan.IsRedacted(v) || pr.Env["PLAIN"] != "visible" {
		t.Errorf("recorded env %v, want MY_TOKEN as its sha256 and PLAIN as written", pr.Env)
	}
	b, _ := json.Marshal(st)
	if strings.Contains(string(b), secret) {
		t.Errorf("the state holds the secret: %s", b)
	}
	for _, l := range e.hook.Lines() {
		if strings.Contains(l, secret) {
			t.Errorf("progress shows the secret: %s", l)
		}
	}

	// An update in place pushes redacted labels too.
	cfg = configOf(pool("pool.chat", sensitive, labels("team", "search", "token", secret, "tier", "gold"),
		func(p *config.Pool) { p.SensitivePaths = []string{"env.MY_TOKEN", "labels.token"} }))
	e.converge(cfg)
	for _, pushes := range e.fake.Pushes() {
		for _, set := range pushes {
			if v := set.Labels["token"]; !plan.IsRedacted(v) {
				t.Errorf("pushed labels %v, want token as its sha256", set.Labels)
			}
		}
	}
	if len(e.fake.Pushes()) == 0 {
		t.Error("no settings pushed for the label change")
	}
}
