package apply_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state/handoff"
)

const secret = "s3cret-api-key"

// withSecret makes the fake provider prepare engines that carry an api key
// the way llamacpp does: in the environment and as the probe token.
func withSecret(e *env) {
	e.prov.EnsureFunc = func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		pe := providertest.DefaultEngine(req.Pool)
		pe.SecretEnv = map[string]string{"LLAMA_API_KEY": secret}
		pe.ProbeToken = secret
		return &pe, nil
	}
}

func chatAndEmbed() *config.Config {
	return configOf(
		pool("pool.chat", replicas(2), port(8080), func(p *config.Pool) {
			p.Env = map[string]string{"LLAMA_ARG_THREADS": "8"}
			p.Labels = map[string]string{"team": "search"}
			p.Flags = []string{"--parallel", "4"}
		}),
		pool("pool.embed"), // port 0: picked at apply time
	)
}

func TestCreateLaunchesEachReplicaWithItsSpec(t *testing.T) {
	e := newEnv(t)
	withSecret(e)
	cfg := chatAndEmbed()
	p := e.plan(cfg, plan.Options{})
	if got, want := changeActions(p), []string{"+ pool.chat", "+ pool.embed"}; !slices.Equal(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}

	specs := map[string]supervisor.Spec{}
	for _, s := range e.fake.Launches() {
		if _, dup := specs[s.Addr]; dup {
			t.Errorf("%s launched twice", s.Addr)
		}
		specs[s.Addr] = s
	}
	if got, want := e.fake.launchedAddrs(), []string{"pool.chat/r0", "pool.chat/r1", "pool.embed/r0"}; !slices.Equal(got, want) {
		t.Fatalf("launched %v, want %v", got, want)
	}

	tests := []struct {
		addr, poolID, id string
		port             int // 0: a free port picked at apply time
	}{
		{"pool.chat/r0", "chat", "r0", 8080},
		{"pool.chat/r1", "chat", "r1", 8081},
		{"pool.embed/r0", "embed", "r0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			s := specs[tt.addr]
			if tt.port > 0 && s.Port != tt.port {
				t.Errorf("port = %d, want %d (pool port + replica index)", s.Port, tt.port)
			}
			if tt.port == 0 && (s.Port <= 0 || s.Port > 65535) {
				t.Errorf("port = %d, want a free port picked at apply time", s.Port)
			}
			if i := slices.Index(s.Args, "--port"); i < 0 || s.Args[i+1] != strconv.Itoa(s.Port) {
				t.Errorf("args %q do not carry --port %d", s.Args, s.Port)
			}
			if s.PoolID != tt.poolID || s.ReplicaID != tt.id {
				t.Errorf("pool/replica = %s/%s, want %s/%s", s.PoolID, s.ReplicaID, tt.poolID, tt.id)
			}
			if want := runDirOf(tt.poolID, tt.id, 0); s.RunDir != want {
				t.Errorf("run dir = %q, want %q", s.RunDir, want)
			}
			if want := handoffOf(tt.poolID, tt.id); s.HandoffPath != want {
				t.Errorf("handoff path = %q, want %q", s.HandoffPath, want)
			}
			if s.Env["LLAMA_API_KEY"] != secret || s.ProbeToken != secret {
				t.Errorf("secret api key did not reach the supervisor: env %v, probe token %q", s.Env, s.ProbeToken)
			}
			if s.Health.Path != "/health" || s.Health.StartTimeout != config.DefaultHealth.StartTimeout ||
				s.Restart.MaxFailures != config.DefaultRestart.MaxFailures || s.Drain.Deadline != config.DefaultDrain.Deadline {
				t.Errorf("policies = %+v %+v %+v, want the pool's", s.Health, s.Restart, s.Drain)
			}
			tmpl, _ := json.Marshal(s.Handoff)
			if strings.Contains(string(tmpl), secret) {
				t.Errorf("handoff template holds the secret: %s", tmpl)
			}
		})
	}
	chat := specs["pool.chat/r0"]
	if chat.Env["LLAMA_ARG_THREADS"] != "8" {
		t.Errorf("pool env missing from %v", chat.Env)
	}
	if chat.Handoff.Labels["team"] != "search" || !slices.Equal(chat.Handoff.Flags, []string{"--parallel", "4"}) ||
		chat.Handoff.Model.Ref != "file:/models/chat.gguf" || chat.Handoff.EngineVersion != providertest.EngineVersion {
		t.Errorf("handoff template = %+v", chat.Handoff)
	}
}

func TestCreateCallsEnsureOncePerPool(t *testing.T) {
	e := newEnv(t)
	cfg := chatAndEmbed()
	e.converge(cfg)
	var got []string
	for _, c := range e.prov.CallsTo("Ensure") {
		got = append(got, c.Pool.Addr)
	}
	slices.Sort(got)
	if want := []string{"pool.chat", "pool.embed"}; !slices.Equal(got, want) {
		t.Errorf("Ensure called for %v, want once for each of %v", got, want)
	}
}

func TestCreateRecordsPoolAndReplicas(t *testing.T) {
	e := newEnv(t)
	withSecret(e)
	cfg := chatAndEmbed()
	p := e.plan(cfg, plan.Options{})
	returned, err := e.run(e.ctx, cfg, p, 0)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := e.stored()
	if got, want := st.Addrs(), returned.Addrs(); !slices.Equal(got, want) {
		t.Errorf("stored pools %v, returned %v", got, want)
	}
	sp := st.Pools["pool.chat"]
	if sp == nil {
		t.Fatalf("pool.chat not recorded; pools %v", st.Addrs())
	}
	d := p.Desired["pool.chat"]
	if sp.Engine != "llamacpp" || sp.SpecHash != d.SpecHash || sp.Spec == nil || sp.Spec.Port != 8080 || sp.Spec.Replicas != 2 {
		t.Errorf("recorded pool = engine %q hash %q spec %+v, want the desired spec (hash %q)", sp.Engine, sp.SpecHash, sp.Spec, d.SpecHash)
	}
	if sp.Prepared == nil {
		t.Fatal("no prepared engine recorded")
	}
	sum := sha256.Sum256([]byte(secret))
	if got, want := sp.Prepared.SecretEnvHashes["LLAMA_API_KEY"], "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("secret env recorded as %q, want its digest %q", got, want)
	}
	if _, ok := sp.Prepared.Env["LLAMA_API_KEY"]; ok {
		t.Errorf("secret recorded in prepared env %v", sp.Prepared.Env)
	}
	if sp.Prepared.EngineVersion != providertest.EngineVersion || sp.Prepared.BinaryPath != "/fake/bin/engine" {
		t.Errorf("prepared = %+v", sp.Prepared)
	}
	raw, err := afero.ReadFile(e.fs, e.store.Path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), secret) {
		t.Errorf("the state file holds the secret in clear:\n%s", raw)
	}

	for _, tt := range []struct {
		id   string
		port int
	}{{"r0", 8080}, {"r1", 8081}} {
		t.Run(tt.id, func(t *testing.T) {
			r := replicaOf(t, st, "pool.chat", tt.id)
			if r.Status != "ready" || r.LastError != "" {
				t.Errorf("status %q last_error %q, want ready and none", r.Status, r.LastError)
			}
			if r.PID < firstPID || r.SupervisorPID != r.PID+1 || r.Port != tt.port {
				t.Errorf("pid %d supervisor %d port %d", r.PID, r.SupervisorPID, r.Port)
			}
			if r.RunDir != runDirOf("chat", tt.id, 0) || r.Handoff != handoffOf("chat", tt.id) {
				t.Errorf("run dir %q handoff %q", r.RunDir, r.Handoff)
			}
			if !r.StartedAt.Equal(t0) || !r.ReadyAt.Equal(t0.Add(1e9)) || r.Generation != 0 || r.Restarts != 0 {
				t.Errorf("started %v ready %v generation %d restarts %d", r.StartedAt, r.ReadyAt, r.Generation, r.Restarts)
			}
			f, err := handoff.Read(e.fs, r.Handoff)
			if err != nil {
				t.Fatalf("handoff file: %v", err)
			}
			if f.PID != r.PID {
				t.Errorf("handoff pid %d, recorded pid %d", f.PID, r.PID)
			}
		})
	}
	if r := replicaOf(t, st, "pool.embed", "r0"); r.Port == 0 || r.Status != "ready" {
		t.Errorf("pool.embed/r0 = port %d status %q; a picked port must be recorded", r.Port, r.Status)
	}
}

func TestCreateRecordsBinaryAndModelFingerprints(t *testing.T) {
	e := newEnv(t)
	bin, mdl := "/opt/llama/llama-server", "/models/m.gguf"
	if err := afero.WriteFile(e.fs, bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := afero.WriteFile(e.fs, mdl, []byte("GGUFmodel-bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.prov.EnsureFunc = func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		pe := providertest.DefaultEngine(req.Pool)
		pe.BinaryPath, pe.ModelPath = bin, mdl
		return &pe, nil
	}
	e.converge(configOf(pool("pool.chat")))
	pr := e.stored().Pools["pool.chat"].Prepared
	bi, _ := e.fs.Stat(bin)
	mi, _ := e.fs.Stat(mdl)
	if pr.BinarySize != bi.Size() || !pr.BinaryMtime.Equal(bi.ModTime()) || pr.ModelSize != mi.Size() || !pr.ModelMtime.Equal(mi.ModTime()) {
		t.Errorf("recorded binary %d/%v model %d/%v, files are %d/%v and %d/%v",
			pr.BinarySize, pr.BinaryMtime, pr.ModelSize, pr.ModelMtime, bi.Size(), bi.ModTime(), mi.Size(), mi.ModTime())
	}
}

// TestCreateSavesStateAfterEveryReplica holds r1's launch until everything
// else is quiet and then looks at what is on disk: r0 must be there.
func TestCreateSavesStateAfterEveryReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		hold := make(chan struct{})
		e.fake.LaunchFunc = func(ctx context.Context, s supervisor.Spec) error {
			if s.Addr == "pool.chat/r1" {
				<-hold
			}
			return nil
		}
		cfg := configOf(pool("pool.chat", replicas(2), port(8080)))
		p := e.plan(cfg, plan.Options{})
		done := make(chan error)
		go func() {
			_, err := e.run(e.ctx, cfg, p, 0)
			done <- err
		}()
		synctest.Wait()

		mid := e.stored()
		sp := mid.Pools["pool.chat"]
		if sp == nil || sp.Prepared == nil || sp.SpecHash == "" {
			t.Fatalf("while r1 starts, the pool is not recorded: %+v", sp)
		}
		if got := replicaIDs(sp); !slices.Equal(got, []string{"r0"}) {
			t.Errorf("while r1 starts, recorded replicas = %v, want [r0]", got)
		}
		if r := sp.Replica("r0"); r == nil || r.Status != "ready" {
			t.Errorf("while r1 starts, r0 = %+v, want ready", r)
		}
		close(hold)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := replicaIDs(e.stored().Pools["pool.chat"]); !slices.Equal(got, []string{"r0", "r1"}) {
			t.Errorf("finally recorded %v", got)
		}
		if w, a := e.store.saves(); w+a < 3 {
			t.Errorf("%d state writes and %d journal appends, want at least 3 saves (pool, r0, r1)", w, a)
		}
	})
}

func TestFailingLaunchIsRecordedAndOthersComplete(t *testing.T) {
	e := newEnv(t)
	launchErr := map[string]string{
		"pool.chat/r1":  "engine exited with status 1 before it was ready: error loading model",
		"pool.embed/r0": "engine not ready after 2m0s",
	}
	e.fake.LaunchFunc = func(_ context.Context, s supervisor.Spec) error {
		if msg := launchErr[s.Addr]; msg != "" {
			return errors.New(msg)
		}
		return nil
	}
	cfg := configOf(pool("pool.chat", replicas(3), port(8080)), pool("pool.embed"), pool("pool.rerank"))
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	if err == nil {
		t.Fatal("Run succeeded with two failed launches")
	}
	st := e.stored()

	tests := []struct {
		pool, id, status, lastError string
	}{
		{"pool.chat", "r0", "ready", ""},
		{"pool.chat", "r1", "failed", launchErr["pool.chat/r1"]},
		{"pool.chat", "r2", "ready", ""},
		{"pool.embed", "r0", "failed", launchErr["pool.embed/r0"]},
		{"pool.rerank", "r0", "ready", ""},
	}
	for _, tt := range tests {
		t.Run(tt.pool+"/"+tt.id, func(t *testing.T) {
			r := replicaOf(t, st, tt.pool, tt.id)
			if r.Status != tt.status || r.LastError != tt.lastError {
				t.Errorf("status %q last_error %q, want %q %q", r.Status, r.LastError, tt.status, tt.lastError)
			}
			if tt.status == "failed" && (r.PID != 0 || r.SupervisorPID != 0) {
				t.Errorf("failed replica records pids %d/%d", r.PID, r.SupervisorPID)
			}
		})
	}
	if r := replicaOf(t, st, "pool.chat", "r1"); r.Port != 8081 || r.RunDir != runDirOf("chat", "r1", 0) {
		t.Errorf("failed replica records port %d run dir %q", r.Port, r.RunDir)
	}

	errs := errorsOf(err)
	if len(errs) != 2 {
		t.Fatalf("Run returned %d errors, want one per failure: %v", len(errs), err)
	}
	msg := err.Error()
	containsAll(t, "error", msg, "pool.chat/r1", launchErr["pool.chat/r1"], "pool.embed/r0", launchErr["pool.embed/r0"])
	for _, x := range errs {
		var ae *apply.Error
		if !errors.As(x, &ae) {
			t.Errorf("%v is not an *apply.Error", x)
		}
	}
}

func TestEnsureFailureNamesThePoolAndOthersFinish(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(e *env)
		wantParts []string
	}{
		{
			name: "provider diagnostics",
			setup: func(e *env) {
				e.prov.EnsureFunc = func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
					if req.Pool.Addr == "pool.chat" {
						return nil, providers.Diagnostics{providers.Errorf("Model not found", "The file /models/chat.gguf does not exist.")}
					}
					pe := providertest.DefaultEngine(req.Pool)
					return &pe, nil
				}
			},
			wantParts: []string{"pool.chat: ", `preparing engine (provider "llamacpp"): Model not found: The file /models/chat.gguf does not exist.`},
		},
		{
			name: "provider returns nothing",
			setup: func(e *env) {
				e.prov.EnsureFunc = func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
					if req.Pool.Addr == "pool.chat" {
						return nil, nil
					}
					pe := providertest.DefaultEngine(req.Pool)
					return &pe, nil
				}
			},
			wantParts: []string{"pool.chat: ", `provider "llamacpp" returned no prepared engine`},
		},
		{
			name: "provider describes a protocol the supervisor cannot follow",
			setup: func(e *env) {
				e.prov.EnsureFunc = func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
					pe := providertest.DefaultEngine(req.Pool)
					if req.Pool.Addr == "pool.chat" {
						pe.Protocol = &providers.EngineProtocol{Stop: providers.StopBehaviour{Signal: "SIGSTOP"}}
					}
					return &pe, nil
				}
			},
			wantParts: []string{"pool.chat: ", `preparing engine (provider "llamacpp"): the engine protocol it returned is invalid: stop signal "SIGSTOP" is not one of SIGTERM, SIGINT, SIGQUIT, SIGHUP`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(e)
			cfg := configOf(pool("pool.chat"), pool("pool.embed"))
			_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			containsAll(t, "error", err.Error(), tt.wantParts...)
			var ae *apply.Error
			if !errors.As(err, &ae) || ae.Addr != "pool.chat" {
				t.Errorf("error %v does not carry the pool address", err)
			}
			if got := e.fake.launchedAddrs(); !slices.Equal(got, []string{"pool.embed/r0"}) {
				t.Errorf("launched %v, want only pool.embed/r0", got)
			}
			st := e.stored()
			if _, ok := st.Pools["pool.chat"]; ok {
				t.Errorf("pool.chat recorded although its engine could not be prepared")
			}
			if r := replicaOf(t, st, "pool.embed", "r0"); r.Status != "ready" {
				t.Errorf("pool.embed/r0 = %q", r.Status)
			}
		})
	}
}

func TestProviderThatWillNotStartFailsEveryPoolUsingIt(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat"))
	p := e.plan(cfg, plan.Options{})
	e.source = brokenSource{hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Failed to load provider",
		Detail: "plugin did not respond."}}}
	_, err := e.run(e.ctx, cfg, p, 0)
	if err == nil {
		t.Fatal("Run succeeded")
	}
	containsAll(t, "error", err.Error(), "pool.chat: ", `provider "llamacpp": `, "Failed to load provider", "plugin did not respond")
	if n := len(e.fake.Launches()); n != 0 {
		t.Errorf("%d launches", n)
	}
}

func TestStateWriteFailureIsReported(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat"))
	p := e.plan(cfg, plan.Options{})
	e.store.FailWith = errors.New("disk full")
	_, err := e.run(e.ctx, cfg, p, 0)
	if err == nil {
		t.Fatal("Run succeeded although no state could be saved")
	}
	containsAll(t, "error", err.Error(), "pool.chat", "saving state: disk full")
}

func TestHooksSeeEveryStepAndEnsureProgress(t *testing.T) {
	e := newEnv(t)
	e.prov.Events = []providers.Event{{Stage: "download", Message: "chat.gguf 50%"}}
	cfg := configOf(pool("pool.chat"))
	e.converge(cfg)
	lines := e.hook.Lines()
	for _, want := range []string{
		"pre pool.chat ensure", "progress pool.chat download chat.gguf 50%", "post pool.chat ensure",
		"pre pool.chat/r0 start", "post pool.chat/r0 start",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("hook calls %q lack %q", lines, want)
		}
	}
	if i, j := slices.Index(lines, "post pool.chat ensure"), slices.Index(lines, "pre pool.chat/r0 start"); i > j {
		t.Errorf("start before ensure finished: %q", lines)
	}
	pre, post := 0, 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "pre "):
			pre++
		case strings.HasPrefix(l, "post "):
			post++
		}
	}
	if pre != post {
		t.Errorf("%d PreStep calls but %d PostStep calls: %q", pre, post, lines)
	}
}

func TestRunRefusesAPlanWithoutPriorState(t *testing.T) {
	e := newEnv(t)
	_, err := apply.Run(e.ctx, &plan.Plan{}, e.deps(), e.options(configOf(), 0))
	if err == nil || err.Error() != "plan carries no prior state" {
		t.Errorf("Run = %v, want %q", err, "plan carries no prior state")
	}
}
