package vllm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk"
	"github.com/llorch/llorch/providers/sdk/sdktest"
)

// fakeVLLM puts an executable named vllm on PATH that behaves like
// `vllm --version`: a log line, then the version. It returns its path.
func fakeVLLM(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "vllm")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return path
}

const versionScript = `#!/bin/sh
if [ "$1" = "--version" ]; then
  echo "INFO 06-01 12:00:00 importing torch"
  echo "0.6.3.post1"
  exit 0
fi
exit 2
`

func config(attrs map[string]cty.Value) cty.Value {
	all := map[string]cty.Value{
		"tensor_parallel_size":   cty.NullVal(cty.Number),
		"gpu_memory_utilization": cty.NullVal(cty.Number),
		"api_key":                cty.NullVal(cty.String),
	}
	for k, v := range attrs {
		all[k] = v
	}
	return cty.ObjectVal(all)
}

func pool(ref string) providers.PoolSpec {
	return providers.PoolSpec{Addr: "pool.chat", ID: "chat", Model: providers.ModelRef{Ref: ref},
		Host: "127.0.0.1", Port: 8000, Replicas: 1}
}

func TestSchemaMarksWhatReachesTheEngine(t *testing.T) {
	s, diags := New().GetSchema(t.Context())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if s.Version != Version {
		t.Errorf("version %q, want %q", s.Version, Version)
	}
	if a := s.Provider.Attributes["binary"]; a == nil || !a.Optional || !a.Type.Equals(cty.String) {
		t.Errorf("binary: %#v", a)
	}
	for name, ty := range map[string]cty.Type{"tensor_parallel_size": cty.Number, "gpu_memory_utilization": cty.Number, "api_key": cty.String} {
		a := s.Pool.Attributes[name]
		if a == nil || !a.Optional || !a.ForcesReplacement || !a.Type.Equals(ty) || a.Description == "" {
			t.Errorf("%s: %#v", name, a)
		}
	}
	if !s.Pool.Attributes["api_key"].Sensitive {
		t.Error("api_key is not sensitive")
	}
	// Core decodes pool blocks with this spec; it must accept the config shape the tests use.
	if !s.Pool.ImpliedType().Equals(config(nil).Type()) {
		t.Errorf("implied pool type %#v", s.Pool.ImpliedType())
	}
}

func TestValidatePool(t *testing.T) {
	tests := []struct {
		name   string
		pool   func(p *providers.PoolSpec)
		config map[string]cty.Value
		want   []providers.Diagnostic // nil: valid
	}{
		{name: "hugging face repository", pool: func(*providers.PoolSpec) {}},
		{name: "repository at a revision", pool: func(p *providers.PoolSpec) { p.Model.Ref = "hf:Qwen/Qwen2.5-0.5B-Instruct@main" }},
		{name: "local directory", pool: func(p *providers.PoolSpec) { p.Model.Ref = "file:/srv/models/qwen" }},
		{name: "every setting", pool: func(p *providers.PoolSpec) { p.Devices = []int{0, 1} },
			config: map[string]cty.Value{"tensor_parallel_size": cty.NumberIntVal(2),
				"gpu_memory_utilization": cty.MustParseNumberVal("0.9"), "api_key": cty.StringVal("k")}},
		{
			name: "a single GGUF file in a repository",
			pool: func(p *providers.PoolSpec) { p.Model.Ref = "hf:org/repo/model.gguf" },
			want: []providers.Diagnostic{providers.AttributeErrorf(refPath, "Invalid model reference",
				`"hf:org/repo/model.gguf" is not a Hugging Face repository: vLLM loads whole repositories, so write hf:ORG/REPO, optionally with @REVISION.`)},
		},
		{
			name: "relative local path",
			pool: func(p *providers.PoolSpec) { p.Model.Ref = "file:models/qwen" },
			want: []providers.Diagnostic{providers.AttributeErrorf(refPath, "Invalid model reference",
				`"file:models/qwen" is not an absolute path, and this llorch does not say which directory it is relative to; write file:/path/to/model-directory.`)},
		},
		{
			name: "a file: ref naming a host",
			pool: func(p *providers.PoolSpec) { p.Model.Ref = "file://nas/models/qwen" },
			want: []providers.Diagnostic{providers.AttributeErrorf(refPath, "Invalid model reference",
				`model ref "file://nas/models/qwen" names a host; file: refs are local paths, like file:/srv/models/model.gguf.`)},
		},
		{
			name: "download URL",
			pool: func(p *providers.PoolSpec) { p.Model.Ref = "https://example.com/q.gguf" },
			want: []providers.Diagnostic{providers.AttributeErrorf(refPath, "Unsupported model reference",
				`vLLM loads a Hugging Face repository (hf:ORG/REPO) or a local model directory (file:/path/to/dir); "https://example.com/q.gguf" is neither.`)},
		},
		{
			name: "checksum",
			pool: func(p *providers.PoolSpec) { p.Model.SHA256 = "ab12" },
			want: []providers.Diagnostic{providers.AttributeErrorf(shaPath, "Unsupported model checksum",
				"A vLLM model is a directory or a repository, not one file, so there is nothing for sha256 to check; remove it.")},
		},
		{
			name: "api key in flags",
			pool: func(p *providers.PoolSpec) { p.Flags = []string{"--enforce-eager", "--api-key=hunter2"} },
			want: []providers.Diagnostic{providers.AttributeErrorf(cty.GetAttrPath("flags").IndexInt(1), "Secret in flags",
				"--api-key on the command line is visible to every local user; set api_key in the vllm block instead, which reaches vLLM as VLLM_API_KEY.")},
		},
		{
			name: "port in flags",
			pool: func(p *providers.PoolSpec) { p.Flags = []string{"--port", "9000"} },
			want: []providers.Diagnostic{providers.AttributeErrorf(cty.GetAttrPath("flags").IndexInt(0), "Flag set by llorch",
				"llorch sets --port from the pool's port; remove it from flags.")},
		},
		{
			name: "context length in flags",
			pool: func(p *providers.PoolSpec) { p.Flags = []string{"--max-model-len=4096"} },
			want: []providers.Diagnostic{providers.AttributeErrorf(cty.GetAttrPath("flags").IndexInt(0), "Flag set by llorch",
				"llorch sets --max-model-len from the pool's ctx; remove it from flags.")},
		},
		{
			name:   "fractional tensor parallel size",
			config: map[string]cty.Value{"tensor_parallel_size": cty.MustParseNumberVal("1.5")},
			want: []providers.Diagnostic{providers.AttributeErrorf(tpPath, "Invalid tensor_parallel_size",
				"tensor_parallel_size must be a whole number, not 1.5.")},
		},
		{
			name:   "zero tensor parallel size",
			config: map[string]cty.Value{"tensor_parallel_size": cty.NumberIntVal(0)},
			want: []providers.Diagnostic{providers.AttributeErrorf(tpPath, "Invalid tensor_parallel_size",
				"tensor_parallel_size must be at least 1, not 0.")},
		},
		{
			name:   "more GPUs than devices",
			pool:   func(p *providers.PoolSpec) { p.Devices = []int{3} },
			config: map[string]cty.Value{"tensor_parallel_size": cty.NumberIntVal(2)},
			want: []providers.Diagnostic{providers.AttributeErrorf(tpPath, "Not enough devices",
				"tensor_parallel_size 2 needs 2 GPUs, but devices lists 1; list more devices or lower it.")},
		},
		{
			name:   "memory fraction above one",
			config: map[string]cty.Value{"gpu_memory_utilization": cty.NumberIntVal(90)},
			want: []providers.Diagnostic{providers.AttributeErrorf(memPath, "Invalid gpu_memory_utilization",
				"gpu_memory_utilization is a fraction above 0 and at most 1, like 0.9; 90 is not.")},
		},
		{
			name:   "empty api key",
			config: map[string]cty.Value{"api_key": cty.StringVal("")},
			want: []providers.Diagnostic{providers.AttributeErrorf(apiKeyPath, "Invalid api_key",
				"api_key is empty; set a key, or remove api_key to serve without one.")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := pool("hf:Qwen/Qwen2.5-0.5B-Instruct")
			if tc.pool != nil {
				tc.pool(&p)
			}
			got := New().ValidatePool(t.Context(), providers.ValidatePoolRequest{Pool: p, Config: config(tc.config)})
			if diff := cmp.Diff(providers.Diagnostics(tc.want), got,
				cmp.Comparer(func(a, b cty.Path) bool { return a.Equals(b) })); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnsurePreparesVLLMServe(t *testing.T) {
	bin := fakeVLLM(t, versionScript)
	prov := New()
	if diags := prov.Configure(t.Context(), providers.ConfigureRequest{Config: cty.NullVal(cty.Object(map[string]cty.Type{"binary": cty.String}))}); diags.HasErrors() {
		t.Fatal(diags)
	}
	p := pool("hf:Qwen/Qwen2.5-0.5B-Instruct@v2")
	p.Devices = []int{0, 1}
	p.Ctx = 8192
	p.Flags = []string{"--enforce-eager"}
	p.Env = map[string]string{"HF_HOME": "/srv/hf"}
	var stages []string
	pe, diags := prov.Ensure(t.Context(), providers.EnsureRequest{
		Pool: p,
		Config: config(map[string]cty.Value{
			"tensor_parallel_size":   cty.NumberIntVal(2),
			"gpu_memory_utilization": cty.MustParseNumberVal("0.85"),
			"api_key":                cty.StringVal("s3cr3t-key"),
		}),
		Progress: func(ev providers.Event) { stages = append(stages, ev.Stage+": "+ev.Message) },
	})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	sum, err := sdk.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := &providers.PreparedEngine{
		BinaryPath:   bin,
		BinarySHA256: sum,
		Args: []string{"serve", "Qwen/Qwen2.5-0.5B-Instruct", "--host", "127.0.0.1", "--port", providers.PortPlaceholder,
			"--max-model-len", "8192", "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.85",
			"--revision", "v2", "--enforce-eager"},
		Env:              map[string]string{"HF_HOME": "/srv/hf", "CUDA_VISIBLE_DEVICES": "0,1"},
		SecretEnv:        map[string]string{"VLLM_API_KEY": "s3cr3t-key"},
		ProbeToken:       "s3cr3t-key",
		Host:             "127.0.0.1",
		Port:             8000,
		EngineVersion:    "vllm-0.6.3.post1",
		ProvisioningMode: "binary",
		PoolID:           "chat",
		DeviceMask:       "0,1",
		HealthPath:       "/health",
		Protocol: &providers.EngineProtocol{
			Readiness: providers.Readiness{Ready: []int{200}},
			Identity:  &providers.IdentityProbe{Path: "/v1/models", Field: "data.0.root", Expect: "Qwen/Qwen2.5-0.5B-Instruct"},
			InFlight:  []providers.InFlightProbe{{Path: "/metrics", Gauges: []string{"vllm:num_requests_running", "vllm:num_requests_waiting"}}},
			Completion: &providers.CompletionProbe{Path: "/v1/completions", PromptField: "prompt", MaxTokensField: "max_tokens",
				Fixed: map[string]string{"model": "Qwen/Qwen2.5-0.5B-Instruct"}, TextField: "choices.0.text"},
			Stop: providers.StopBehaviour{Signal: "SIGTERM"},
			LogCauses: []providers.LogCause{
				{Cause: "bad_argument", Contains: []string{"error: unrecognized arguments", "error: argument "}},
				{Cause: "model_load_failed", Contains: []string{
					"does not appear to have a file named config.json", "is not a valid model identifier",
				}},
			},
		},
	}
	if diff := cmp.Diff(want, pe); diff != "" {
		t.Errorf("prepared engine (-want +got):\n%s", diff)
	}
	if strings.Contains(strings.Join(pe.Args, " "), "s3cr3t-key") {
		t.Error("the api key is on the command line")
	}
	wantStages := []string{
		"locate: vLLM 0.6.3.post1 at " + bin,
		"model: Qwen/Qwen2.5-0.5B-Instruct will be downloaded by vLLM when it starts",
	}
	if diff := cmp.Diff(wantStages, stages); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	// Each replica gets its port where the placeholder is.
	if r1 := pe.ForReplica("r1", 8001); !strings.Contains(strings.Join(r1.Args, " "), "--port 8001") {
		t.Errorf("ForReplica did not move the port: %v", r1.Args)
	}
}

func TestEnsureLocalDirectoryAndCPUOnly(t *testing.T) {
	fakeVLLM(t, versionScript)
	dir := t.TempDir()
	p := pool("file:" + dir)
	p.Devices = []int{}
	p.Host = ""
	pe, diags := New().Ensure(t.Context(), providers.EnsureRequest{Pool: p, Config: config(nil)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if pe.ModelPath != dir || pe.Args[1] != dir {
		t.Errorf("model path %q, args %v; want %s", pe.ModelPath, pe.Args, dir)
	}
	if v, ok := pe.Env["CUDA_VISIBLE_DEVICES"]; !ok || v != "" {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q (set %v), want empty to hide every GPU", v, ok)
	}
	if pe.Host != "127.0.0.1" || pe.Args[3] != "127.0.0.1" {
		t.Errorf("an unset host must stay on loopback, got %q / %v", pe.Host, pe.Args)
	}
	if pe.SecretEnv != nil || pe.ProbeToken != "" {
		t.Errorf("secrets without an api_key: %v %q", pe.SecretEnv, pe.ProbeToken)
	}
	if err := pe.Protocol.Validate(); err != nil || pe.Protocol.Identity.Expect != dir {
		t.Errorf("protocol %+v (%v): the identity check must expect the directory vLLM loads", pe.Protocol, err)
	}
}

// A relative file: ref is relative to the configuration directory llorch
// passes to Configure, whatever the plugin's working directory.
func TestRelativeModelDirectoryResolvesAgainstTheConfigurationDirectory(t *testing.T) {
	fakeVLLM(t, versionScript)
	confDir := t.TempDir()
	dir := filepath.Join(confDir, "models", "qwen")
	prov := New()
	if diags := prov.Configure(t.Context(), providers.ConfigureRequest{Config: cty.NullVal(cty.Object(map[string]cty.Type{"binary": cty.String})), ConfigDir: confDir}); diags.HasErrors() {
		t.Fatal(diags)
	}
	p := pool("file:models/qwen")
	p.Devices = []int{}
	_, diags := prov.Ensure(t.Context(), providers.EnsureRequest{Pool: p, Config: config(nil)})
	if len(diags) != 1 || diags[0].Summary != "Model directory not found" || !strings.Contains(diags[0].Detail, dir+" is not a directory") {
		t.Fatalf("before the directory exists: %v", diags)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if diags := prov.ValidatePool(t.Context(), providers.ValidatePoolRequest{Pool: p, Config: config(nil)}); len(diags) > 0 {
		t.Fatal(diags)
	}
	pe, diags := prov.Ensure(t.Context(), providers.EnsureRequest{Pool: p, Config: config(nil)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if pe.ModelPath != dir || pe.Args[1] != dir {
		t.Errorf("model path %q, args %v; want %s", pe.ModelPath, pe.Args, dir)
	}
}

func TestSmokeCompletionsNameTheServedModel(t *testing.T) {
	fakeVLLM(t, versionScript)
	for model, flags := range map[string][]string{
		"Qwen/Qwen2.5-0.5B-Instruct": nil,
		"chat":                       {"--served-model-name", "chat"},
		"chat2":                      {"--enforce-eager", "--served-model-name=chat2"},
	} {
		p := pool("hf:Qwen/Qwen2.5-0.5B-Instruct")
		p.Flags = flags
		pe, diags := New().Ensure(t.Context(), providers.EnsureRequest{Pool: p, Config: config(nil)})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if got := pe.Protocol.Completion.Fixed["model"]; got != model {
			t.Errorf("flags %v: completions name model %q, want %q", flags, got, model)
		}
	}
}

func TestEnsureFailures(t *testing.T) {
	missingDir := filepath.Join(t.TempDir(), "nope")
	tests := []struct {
		name   string
		script string // "" = no vllm on PATH
		binary string
		ref    string
		want   string
	}{
		{
			name: "vllm not installed",
			ref:  "hf:org/repo",
			want: `vLLM not ready: vllm executable "vllm" is not on PATH; install vLLM (pip install vllm) or set binary in the provider "vllm" block to its path.`,
		},
		{
			name:   "configured binary missing",
			binary: "/opt/vllm/bin/vllm",
			ref:    "hf:org/repo",
			want:   `vLLM not ready: vllm executable /opt/vllm/bin/vllm does not exist; fix binary in the provider "vllm" block.`,
		},
		{
			name:   "configured binary not executable",
			binary: "%NOEXEC%",
			ref:    "hf:org/repo",
			want:   "vLLM not ready: vllm executable %NOEXEC% cannot be run (exec: \"%NOEXEC%\": permission denied); make it executable with chmod +x.",
		},
		{
			name:   "version command fails",
			script: "#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n",
			ref:    "hf:org/repo",
			want:   "vLLM not ready: `%BIN% --version` failed: exit status 1: ModuleNotFoundError: No module named torch.",
		},
		{
			name:   "version command prints no version",
			script: "#!/bin/sh\necho 'usage: vllm'\n",
			ref:    "hf:org/repo",
			want:   "vLLM not ready: `%BIN% --version` printed \"usage: vllm\\n\", which does not end with a version.",
		},
		{
			name:   "local model directory missing",
			script: versionScript,
			ref:    "file:" + missingDir,
			want: "Model directory not found: " + missingDir +
				" is not a directory; vLLM loads a local model from a directory holding its config.json and weights.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bin := ""
			if tc.script != "" {
				bin = fakeVLLM(t, tc.script)
			} else {
				t.Setenv("PATH", t.TempDir())
			}
			noexec := filepath.Join(t.TempDir(), "vllm")
			if err := os.WriteFile(noexec, []byte(versionScript), 0o644); err != nil {
				t.Fatal(err)
			}
			binary := strings.ReplaceAll(tc.binary, "%NOEXEC%", noexec)
			prov := New()
			if binary != "" {
				if d := prov.Configure(t.Context(), providers.ConfigureRequest{Config: cty.ObjectVal(map[string]cty.Value{"binary": cty.StringVal(binary)})}); d.HasErrors() {
					t.Fatal(d)
				}
			}
			pe, diags := prov.Ensure(t.Context(), providers.EnsureRequest{Pool: pool(tc.ref), Config: config(nil)})
			want := strings.NewReplacer("%BIN%", bin, "%NOEXEC%", noexec).Replace(tc.want)
			if pe != nil || diags.Error() != want {
				t.Errorf("got %v, %q\nwant %q", pe, diags.Error(), want)
			}
		})
	}
}

func TestConfigureRejectsAnEmptyBinary(t *testing.T) {
	diags := New().Configure(t.Context(), providers.ConfigureRequest{Config: cty.ObjectVal(map[string]cty.Value{"binary": cty.StringVal("")})})
	want := `Invalid binary: binary is empty; set it to the vllm executable's path, or remove it to look for "vllm" on PATH.`
	if diags.Error() != want || !diags[0].Attribute.Equals(cty.GetAttrPath("binary")) {
		t.Errorf("got %q at %#v\nwant %q", diags.Error(), diags[0].Attribute, want)
	}
}

func TestPlanPoolReportsTheEngineVersion(t *testing.T) {
	bin := fakeVLLM(t, versionScript)
	sum, err := sdk.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	planned, diags := New().PlanPool(t.Context(), providers.PlanPoolRequest{Pool: pool("hf:org/repo"), Config: config(nil), PinnedBinarySHA256: sum})
	if diags.HasErrors() || planned.EngineVersion != "vllm-0.6.3.post1" || planned.BinarySHA256 != sum {
		t.Errorf("got %#v, %v", planned, diags)
	}
	// Not pinned: vllm is not run, its digest is reported.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ntouch \"$0.ran\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	planned, diags = New().PlanPool(t.Context(), providers.PlanPoolRequest{Pool: pool("hf:org/repo"), Config: config(nil), PinnedBinarySHA256: sum})
	if _, err := os.Stat(bin + ".ran"); err == nil || diags.HasErrors() || planned.EngineVersion != "" || planned.BinarySHA256 == sum {
		t.Errorf("a vllm other than the pinned one: got %#v, %v (ran: %v)", planned, diags, err == nil)
	}

	t.Setenv("PATH", t.TempDir())
	planned, diags = New().PlanPool(t.Context(), providers.PlanPoolRequest{Pool: pool("hf:org/repo"), Config: config(nil)})
	if planned == nil || planned.EngineVersion != "" || len(diags) != 1 || diags[0].Severity != providers.Warning ||
		!strings.HasSuffix(diags[0].Detail, "Apply will fail unless this is fixed first.") {
		t.Errorf("without vllm: got %#v, %#v; want a warning and no version", planned, diags)
	}
}

// Through the plugin protocol, as llorch calls it: the pin reaches the
// provider and the digest comes back.
func TestPlanPoolOverThePluginProtocol(t *testing.T) {
	bin := fakeVLLM(t, versionScript)
	sum, err := sdk.FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	p := sdktest.Connect(t, "vllm", New())
	if diags := p.Configure(t.Context(), providers.ConfigureRequest{Config: cty.ObjectVal(map[string]cty.Value{"binary": cty.NullVal(cty.String)})}); diags.HasErrors() {
		t.Fatal(diags)
	}
	planned, diags := p.PlanPool(t.Context(), providers.PlanPoolRequest{Pool: pool("hf:org/repo"), Config: config(nil), PinnedBinarySHA256: sum})
	if diags.HasErrors() || planned.EngineVersion != "vllm-0.6.3.post1" || planned.BinarySHA256 != sum {
		t.Errorf("got %#v, %v", planned, diags)
	}
}
