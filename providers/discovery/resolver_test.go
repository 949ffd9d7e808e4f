package discovery

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

func pidOf(t *testing.T, p providers.Provider) int {
	t.Helper()
	pp, ok := p.(*pluginProvider)
	if !ok {
		t.Fatalf("provider is %T, want *pluginProvider", p)
	}
	pid, err := strconv.Atoi(pp.client.ID())
	if err != nil {
		t.Fatalf("plugin id %q: %v", pp.client.ID(), err)
	}
	return pid
}

// gone reports whether pid has exited and been reaped.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestThirdPartyPluginServesEveryCallOverItsProcess(t *testing.T) {
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "testok")}})
	if names := r.Names(); strings.Join(names, ",") != "testok" {
		t.Errorf("Names() = %v, want [testok]", names)
	}
	p, err := r.Provider(t.Context(), "testok")
	if err != nil {
		t.Fatalf("Provider: %v", err)
	}
	schema, diags := p.GetSchema(t.Context())
	if diags.HasErrors() || schema.Version != "1.0.0" || !schema.Pool.Attributes["api_key"].Sensitive {
		t.Fatalf("GetSchema: %#v, %v", schema, diags)
	}
	if diags := p.Configure(t.Context(), providers.ConfigureRequest{Config: cty.NullVal(schema.Provider.ImpliedType())}); diags.HasErrors() {
		t.Fatalf("Configure: %v", diags)
	}
	if planned, diags := p.PlanPool(t.Context(), providers.PlanPoolRequest{}); diags.HasErrors() || planned.EngineVersion != "testok-1" {
		t.Fatalf("PlanPool: %#v, %v", planned, diags)
	}

	var events []providers.Event
	pe, diags := p.Ensure(t.Context(), providers.EnsureRequest{
		Pool:     providers.PoolSpec{Addr: "pool.chat", ID: "chat", Devices: []int{}},
		Config:   cty.ObjectVal(map[string]cty.Value{"api_key": cty.StringVal("s3cr3t-key").Mark("sensitive")}),
		Progress: func(ev providers.Event) { events = append(events, ev) },
	})
	if diags.HasErrors() {
		t.Fatalf("Ensure: %v", diags)
	}
	if len(events) != 3 || events[2].Current != 3 || events[2].Total != 3 {
		t.Errorf("progress events: %#v, want 3 build steps", events)
	}
	if pe.SecretEnv["API_KEY"] != "s3cr3t-key" {
		t.Errorf("the sensitive api_key arrived as %q", pe.SecretEnv["API_KEY"])
	}
	if pe.Args[0] != "--devices=[]" {
		t.Errorf("CPU-only devices arrived as %q, want an empty list", pe.Args[0])
	}
	if diags := p.Cleanup(t.Context(), providers.CleanupRequest{}); diags.HasErrors() {
		t.Errorf("Cleanup: %v", diags)
	}
}

// A provider built on go-plugin alone (no llorch SDK) makes its own key and
// sends its certificate in the handshake, as with Terraform's AutoMTLS;
// llorch must trust that one instead of the key it made for the plugin.
func TestPluginOnStockGoPluginAnswersWithItsOwnCertificate(t *testing.T) {
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "stock")}})
	p, err := r.Provider(t.Context(), "stock")
	if err != nil {
		t.Fatalf("Provider: %v", err)
	}
	if schema, diags := p.GetSchema(t.Context()); diags.HasErrors() || schema.Version != "1.0.0" {
		t.Fatalf("GetSchema over the plugin's own certificate: %#v, %v", schema, diags)
	}
}

func TestBuiltinIsServedByReExecutingLlorch(t *testing.T) {
	self := installed(t, "llorch")
	r := newResolver(t, Options{SelfExe: self, Builtins: map[string][]string{"selfok": {"internal-plugin", "testok"}}})
	infos, err := r.Describe(t.Context())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if len(infos) != 1 {
		t.Fatalf("Describe: %#v", infos)
	}
	in := infos[0]
	if in.Name != "selfok" || in.Version != "1.0.0" || !in.Builtin || in.Path != self || in.SHA256 != "" || in.Schema == nil {
		t.Errorf("info: %#v", in)
	}
}

func TestBuiltinWinsOverAPluginOfTheSameName(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "testok", "#!/bin/sh\necho not me\n")
	r := newResolver(t, Options{SelfExe: installed(t, "llorch"), Builtins: map[string][]string{"testok": {"internal-plugin", "testok"}}, Dirs: []string{dir}})
	p, err := r.Provider(t.Context(), "testok")
	if err != nil {
		t.Fatalf("Provider: %v", err)
	}
	if pp := p.(*pluginProvider); !pp.spec.builtin {
		t.Errorf("resolved %s, want the built-in", pp.spec.display())
	}
}

func TestFirstDirectoryWins(t *testing.T) {
	first, second := linkPlugins(t, "testok"), t.TempDir()
	writeScript(t, second, "testok", "#!/bin/sh\necho shadowed\n")
	writeScript(t, second, "other", "#!/bin/sh\n")
	r := newResolver(t, Options{Dirs: []string{filepath.Join(t.TempDir(), "missing"), first, second}})
	if names := strings.Join(r.Names(), ","); names != "other,testok" {
		t.Errorf("Names() = %s", names)
	}
	p, err := r.Provider(t.Context(), "testok")
	if err != nil {
		t.Fatalf("Provider: %v", err)
	}
	if got := p.(*pluginProvider).spec.path; filepath.Dir(got) != first {
		t.Errorf("resolved %s, want the one in %s", got, first)
	}
}

func TestConcurrentRequestsShareOnePluginProcess(t *testing.T) {
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "testok")}})
	const n = 8
	got := make([]providers.Provider, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := r.Provider(t.Context(), "testok")
			if err != nil {
				t.Errorf("Provider: %v", err)
			}
			got[i] = p
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if got[i] != got[0] {
			t.Fatalf("request %d got another provider than request 0", i)
		}
	}
}

func TestClosingAProviderStopsItsProcessAndTheNextRequestStartsAnother(t *testing.T) {
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "testok")}})
	p, err := r.Provider(t.Context(), "testok")
	if err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Errorf("plugin process %d still exists after Close", pid)
	}
	again, err := r.Provider(t.Context(), "testok")
	if err != nil {
		t.Fatal(err)
	}
	if again == p || pidOf(t, again) == pid {
		t.Error("the closed plugin was handed out again")
	}
	if _, diags := again.GetSchema(t.Context()); diags.HasErrors() {
		t.Errorf("restarted plugin: %v", diags)
	}
}

func TestResolverCloseKillsEveryPluginItStarted(t *testing.T) {
	r := newResolver(t, Options{
		Dirs:     []string{linkPlugins(t, "testok")},
		SelfExe:  installed(t, "llorch"),
		Builtins: map[string][]string{"selfok": {"internal-plugin", "testok"}},
	})
	var pids []int
	for _, name := range []string{"testok", "selfok"} {
		p, err := r.Provider(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pidOf(t, p))
	}
	r.Close()
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("plugin process %d survived Resolver.Close", pid)
		}
	}
	_, err := r.Provider(t.Context(), "testok")
	if !errors.Is(err, ErrClosed) || err.Error() != `starting provider "testok": provider resolver closed` {
		t.Errorf("after Close: %v", err)
	}
	r.Close() // a second Close does nothing
}

func TestPluginNotFoundListsEveryDirectorySearched(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	r := newResolver(t, Options{Dirs: []string{a, b}, SelfExe: "/usr/bin/llorch",
		Builtins: map[string][]string{"llamacpp": {"internal-plugin", "llamacpp"}}})
	_, err := r.Provider(t.Context(), "vllm")
	want := `provider "vllm" not found: there is no executable llorch-provider-vllm (searched ` + a + ", " + b +
		"); build or copy it into one of these directories and run `llorch init` (known providers: llamacpp)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestPluginThatIsNotExecutable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "llorch-provider-vllm")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, Options{Dirs: []string{dir}})
	_, err := r.Provider(t.Context(), "vllm")
	want := `provider "vllm" plugin ` + path + " is not executable; make it so with chmod +x " + path
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestExecutableThatIsNotALlorchPlugin(t *testing.T) {
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Fatalf("no true(1): %v", err)
	}
	tests := []struct {
		name    string
		install func(dir string) string // returns the plugin path
		want    string                  // after `provider "x" plugin PATH `
	}{
		{
			name: "script printing garbage",
			install: func(dir string) string {
				return writeScript(t, dir, "x", "#!/bin/sh\necho 'oops, wrong program' >&2\necho 'hello from a script'\n")
			},
			want: `is not a llorch provider plugin (it did not complete the plugin handshake): it printed "hello from a script" instead; ` +
				"the last lines it wrote to standard error:\n  oops, wrong program",
		},
		{
			name: "true(1)",
			install: func(dir string) string {
				path := filepath.Join(dir, "llorch-provider-x")
				if err := os.Symlink(truePath, path); err != nil {
					t.Fatal(err)
				}
				return path
			},
			want: "is not a llorch provider plugin (it did not complete the plugin handshake): it exited before the handshake",
		},
		{
			name:    "not a program at all",
			install: func(dir string) string { return writeScript(t, dir, "x", "just some text\n") },
			want:    "is not a llorch provider plugin (it did not complete the plugin handshake): fork/exec %PATH%: exec format error",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.install(dir)
			r := newResolver(t, Options{Dirs: []string{dir}})
			_, err := r.Provider(t.Context(), "x")
			want := `provider "x" plugin ` + path + " " + strings.ReplaceAll(tc.want, "%PATH%", path)
			if err == nil || err.Error() != want || !errors.Is(err, ErrNotPlugin) {
				t.Errorf("got  %v\nwant %s", err, want)
			}
		})
	}
}

func TestPluginSpeakingAnotherProtocolVersion(t *testing.T) {
	dir := linkPlugins(t, "v2")
	r := newResolver(t, Options{Dirs: []string{dir}})
	_, err := r.Provider(t.Context(), "v2")
	want := `provider "v2" plugin ` + filepath.Join(dir, "llorch-provider-v2") +
		" speaks llorch plugin protocol version 2, but this llorch speaks protocol version 1; install a build of the plugin made for protocol version 1"
	if err == nil || err.Error() != want || !errors.Is(err, ErrProtocolVersion) {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestPluginThatNeverCompletesTheHandshake(t *testing.T) {
	dir := t.TempDir()
	path := writeScript(t, dir, "stuck", "#!/bin/sh\nexec sleep 60\n")

	t.Run("start timeout", func(t *testing.T) {
		r := newResolver(t, Options{Dirs: []string{dir}, StartTimeout: 300 * time.Millisecond})
		_, err := r.Provider(t.Context(), "stuck")
		want := `provider "stuck" plugin ` + path +
			" did not complete the plugin handshake within 300ms; it may not be a llorch provider plugin, or it is stuck"
		if err == nil || err.Error() != want {
			t.Errorf("got  %v\nwant %s", err, want)
		}
	})

	t.Run("caller gives up", func(t *testing.T) {
		// The start timeout is far away: only the caller's deadline can end this.
		r := newResolver(t, Options{Dirs: []string{dir}, StartTimeout: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err := r.Provider(ctx, "stuck")
		if !errors.Is(err, context.DeadlineExceeded) || err.Error() != `starting provider "stuck": context deadline exceeded` {
			t.Errorf("got %v", err)
		}
	})
}

func TestPluginCrashDuringEnsureNamesItAndShowsItsLastWords(t *testing.T) {
	dir := linkPlugins(t, "crash")
	var userStderr syncBuffer
	r := newResolver(t, Options{Dirs: []string{dir}, Stderr: &userStderr})
	p, err := r.Provider(t.Context(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, p)
	pe, diags := p.Ensure(t.Context(), providers.EnsureRequest{Pool: providers.PoolSpec{Addr: "pool.chat"}})
	path := filepath.Join(dir, "llorch-provider-crash")
	want := `Plugin did not respond: The "crash" provider plugin encountered an error, and failed to respond to the Ensure call. ` +
		"Its process (" + path + ") has stopped. The last lines it wrote to standard error:\n" +
		"  crash-test: out of memory while staging"
	if pe != nil || diags.Error() != want {
		t.Errorf("got %v, %q\nwant %q", pe, diags.Error(), want)
	}
	if !gone(pid) {
		t.Errorf("crashed plugin process %d was not reaped", pid)
	}

	// The resolver does not hand out the dead plugin again.
	again, err := r.Provider(t.Context(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	if pidOf(t, again) == pid {
		t.Error("the dead plugin was handed out again")
	}
	if _, diags := again.GetSchema(t.Context()); diags.HasErrors() {
		t.Errorf("restarted plugin: %v", diags)
	}
}

func TestCancellingEnsureOnTheHostCancelsItInThePluginProcess(t *testing.T) {
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "testok")}})
	p, err := r.Provider(t.Context(), "testok")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, diags := p.Ensure(ctx, providers.EnsureRequest{
		Pool:     providers.PoolSpec{Addr: "pool.block"},
		Progress: func(providers.Event) { cancel() }, // the plugin is at work: give up
	})
	if want := `Request cancelled: The Ensure call to the "testok" provider plugin was cancelled.`; diags.Error() != want {
		t.Errorf("got %q\nwant %q", diags.Error(), want)
	}
	// Ask the same plugin process what its Ensure saw.
	qctx, qcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer qcancel()
	got := p.ValidatePool(qctx, providers.ValidatePoolRequest{Pool: providers.PoolSpec{Addr: "pool.query-cancelled"}})
	if len(got) != 1 || got[0].Detail != "ensure saw context canceled" {
		t.Errorf("the plugin reported %#v, want its Ensure's ctx cancelled", got)
	}
}

func TestPluginLogsGoToLlorchsLoggerAndItsStderrToOptionsStderr(t *testing.T) {
	t.Setenv("LLORCH_LOG", "debug") // inherited by the plugin, as from the CLI
	var logs syncBuffer
	stderr := &syncBuffer{want: "testok: configured\n", seen: make(chan struct{})}
	seen := stderr.seen
	logger := hclog.New(&hclog.LoggerOptions{Name: "llorch", Output: &logs, Level: hclog.Debug})
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "testok")}, Logger: logger, Stderr: stderr})
	p, err := r.Provider(t.Context(), "testok")
	if err != nil {
		t.Fatal(err)
	}
	if diags := p.Configure(t.Context(), providers.ConfigureRequest{LlorchVersion: "0.1.0"}); diags.HasErrors() {
		t.Fatal(diags)
	}
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Errorf("the plugin's stderr line never reached Options.Stderr; got %q", stderr.String())
	}
	r.Close() // waits until the plugin's log lines have been read
	if out := logs.String(); !strings.Contains(out, "llorch.provider.testok") || !strings.Contains(out, "configured by host: llorch_version=0.1.0") {
		t.Errorf("plugin log line missing from llorch's log:\n%s", out)
	}
}

func TestVLLMExampleThroughThePluginPath(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vllm")
	script := "#!/bin/sh\n[ \"$1\" = --version ] && echo 0.6.3.post1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH")) // inherited by the plugin
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "vllm")}})
	p, err := r.Provider(t.Context(), "vllm")
	if err != nil {
		t.Fatal(err)
	}
	schema, diags := p.GetSchema(t.Context())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if diags := p.Configure(t.Context(), providers.ConfigureRequest{Config: cty.NullVal(schema.Provider.ImpliedType())}); diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg := cty.ObjectVal(map[string]cty.Value{
		"tensor_parallel_size":   cty.NumberIntVal(1),
		"gpu_memory_utilization": cty.NullVal(cty.Number),
		"api_key":                cty.StringVal("s3cr3t-key"),
	})
	pool := providers.PoolSpec{Addr: "pool.chat", ID: "chat", Model: providers.ModelRef{Ref: "hf:Qwen/Qwen2.5-0.5B-Instruct"},
		Host: "127.0.0.1", Port: 8000, Devices: []int{0}}
	if diags := p.ValidatePool(t.Context(), providers.ValidatePoolRequest{Pool: pool, Config: cfg}); diags.HasErrors() {
		t.Fatal(diags)
	}
	var stages []string
	pe, diags := p.Ensure(t.Context(), providers.EnsureRequest{Pool: pool, Config: cfg,
		Progress: func(ev providers.Event) { stages = append(stages, ev.Stage) }})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if pe.BinaryPath != bin || pe.EngineVersion != "vllm-0.6.3.post1" || pe.SecretEnv["VLLM_API_KEY"] != "s3cr3t-key" ||
		pe.Env["CUDA_VISIBLE_DEVICES"] != "0" || pe.HealthPath != "/health" || pe.ProvisioningMode != "binary" {
		t.Errorf("prepared engine: %#v", pe)
	}
	if strings.Join(stages, ",") != "locate,model" {
		t.Errorf("progress stages %v", stages)
	}
	bad := pool
	bad.Model.Ref = "https://example.com/q.gguf"
	diags = p.ValidatePool(t.Context(), providers.ValidatePoolRequest{Pool: bad, Config: cfg})
	if len(diags) != 1 || diags[0].Summary != "Unsupported model reference" ||
		!diags[0].Attribute.Equals(cty.GetAttrPath("model").GetAttr("ref")) {
		t.Errorf("bad model ref: %#v", diags)
	}
}

func TestEveryCallInFlightWhenThePluginCrashesReportsIt(t *testing.T) {
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "crash")}})
	p, err := r.Provider(t.Context(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	results := make([]providers.Diagnostics, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = p.Ensure(t.Context(), providers.EnsureRequest{})
		}()
	}
	wg.Wait()
	for i, diags := range results {
		if len(diags) != 1 || diags[0].Summary != "Plugin did not respond" ||
			!strings.Contains(diags[0].Detail, `The "crash" provider plugin encountered an error`) {
			t.Errorf("call %d: %v", i, diags)
		}
	}
}

func TestInvalidProviderNameIsRefusedBeforeAnyLookup(t *testing.T) {
	r := newResolver(t, Options{Dirs: []string{t.TempDir()}})
	_, err := r.Provider(t.Context(), "../../bin/sh")
	want := `provider name "../../bin/sh" is invalid: provider names use lower-case letters, digits, '-' and '_'`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestCloseKillsPluginsStillStarting(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "stuck", "#!/bin/sh\nexec sleep 60\n")
	r := newResolver(t, Options{Dirs: []string{dir}, StartTimeout: time.Hour})
	errc := make(chan error, 1)
	go func() {
		_, err := r.Provider(t.Context(), "stuck")
		errc <- err
	}()
	// Close as soon as the start is under way (or before: both must end it).
	r.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Provider still waiting for a stuck plugin after Close")
	}
}
