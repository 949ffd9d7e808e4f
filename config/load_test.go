package config

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/spf13/afero"
	"github.com/zclconf/go-cty/cty"
)

// poolCmp compares the decoded fields of pools; ranges, bodies and eval
// contexts have tests of their own.
var poolCmp = cmp.Options{
	cmpopts.IgnoreFields(Pool{}, "Key", "ProviderBody", "EvalCtx", "DeclRange", "AttrRanges"),
}

const qwen = "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf"

func TestLoadDecodesPools(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  []*Pool
	}{
		{
			name: "minimal pool gets every default",
			files: map[string]string{"main.llorch.hcl": `
pool "chat" {
  engine = "llamacpp"
  model { ref = "` + qwen + `" }
}
`},
			want: []*Pool{{
				Addr: "pool.chat", Name: "chat", ID: "chat", Engine: "llamacpp", Replicas: 1,
				Model: Model{Ref: qwen}, Host: DefaultHost,
				Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
			}},
		},
		{
			name: "every attribute is decoded",
			files: map[string]string{"main.llorch.hcl": `
variable "models" {
  type    = string
  default = "/srv/models"
}

pool "chat" {
  engine   = "llamacpp"
  replicas = 2
  model {
    ref    = "file:${var.models}/qwen.gguf"
    sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
  }
  host    = "0.0.0.0"
  port    = 8080
  devices = [0, 1]
  ctx     = 4096
  flags   = ["--parallel", "4"]
  env     = { LLAMA_ARG_THREADS = "8" }
  labels  = { team = "search" }
  fit     = "warn"
  health {
    path          = "/ready"
    interval      = "250ms"
    start_timeout = "2m"
    live_interval = "10s"
    failures      = 4
  }
  restart {
    policy          = "on-failure"
    initial_backoff = "2s"
    max_backoff     = "30s"
    multiplier      = 1.5
    jitter          = 0
    reset_after     = "10m"
    max_failures    = 3
    cooldown        = "0s"
  }
  drain {
    deadline     = "1m"
    kill_timeout = "3s"
  }
  update {
    strategy = "drain_first"
  }
}
`},
			want: []*Pool{{
				Addr: "pool.chat", Name: "chat", ID: "chat", Engine: "llamacpp", Replicas: 2,
				Model: Model{Ref: "file:/srv/models/qwen.gguf", SHA256: "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"},
				Host:  "0.0.0.0", Port: 8080, Devices: []int{0, 1}, Ctx: 4096,
				Flags:  []string{"--parallel", "4"},
				Env:    map[string]string{"LLAMA_ARG_THREADS": "8"},
				Labels: map[string]string{"team": "search"},
				Health: Health{Path: "/ready", Interval: 250 * time.Millisecond, StartTimeout: 2 * time.Minute,
					LiveInterval: 10 * time.Second, Failures: 4},
				Restart: Restart{Policy: RestartOnFailure, InitialBackoff: 2 * time.Second, MaxBackoff: 30 * time.Second,
					Multiplier: 1.5, Jitter: 0, ResetAfter: 10 * time.Minute, MaxFailures: 3, Cooldown: 0},
				Drain:  Drain{Deadline: time.Minute, KillTimeout: 3 * time.Second},
				Update: Update{Strategy: DrainFirst}, Fit: FitWarn,
			}},
		},
		{
			name: "empty devices list means CPU only and is not nil",
			files: map[string]string{"main.llorch.hcl": `
pool "cpu" {
  engine  = "llamacpp"
  devices = []
  model { ref = "file:/m.gguf" }
}
`},
			want: []*Pool{{
				Addr: "pool.cpu", Name: "cpu", ID: "cpu", Engine: "llamacpp", Replicas: 1,
				Model: Model{Ref: "file:/m.gguf"}, Host: DefaultHost, Devices: []int{},
				Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
			}},
		},
		{
			name: "null attributes mean unset and keep defaults",
			files: map[string]string{"main.llorch.hcl": `
pool "chat" {
  engine   = "llamacpp"
  replicas = null
  port     = null
  model { ref = "file:/m.gguf" }
  health { interval = null }
}
`},
			want: []*Pool{{
				Addr: "pool.chat", Name: "chat", ID: "chat", Engine: "llamacpp", Replicas: 1,
				Model: Model{Ref: "file:/m.gguf"}, Host: DefaultHost,
				Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
			}},
		},
		{
			name: "for_each over a set makes one pool per key",
			files: map[string]string{"main.llorch.hcl": `
pool "embed" {
  for_each = toset(["e5", "bge"])
  engine   = "llamacpp"
  model { ref = "file:/srv/${each.key}.gguf" }
  labels = { model = each.value }
}
`},
			want: []*Pool{
				{
					Addr: `pool.embed["bge"]`, Name: "embed", ID: "embed-bge", Engine: "llamacpp", Replicas: 1,
					Model: Model{Ref: "file:/srv/bge.gguf"}, Host: DefaultHost, Labels: map[string]string{"model": "bge"},
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
				{
					Addr: `pool.embed["e5"]`, Name: "embed", ID: "embed-e5", Engine: "llamacpp", Replicas: 1,
					Model: Model{Ref: "file:/srv/e5.gguf"}, Host: DefaultHost, Labels: map[string]string{"model": "e5"},
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
			},
		},
		{
			name: "for_each over a map exposes each.value",
			files: map[string]string{"main.llorch.hcl": `
pool "chat" {
  for_each = {
    small = { port = 9000, replicas = 1 }
    large = { port = 9100, replicas = 3 }
  }
  engine   = "llamacpp"
  port     = each.value.port
  replicas = each.value.replicas
  model { ref = "file:/srv/${each.key}.gguf" }
}
`},
			want: []*Pool{
				{
					Addr: `pool.chat["large"]`, Name: "chat", ID: "chat-large", Engine: "llamacpp", Replicas: 3, Port: 9100,
					Model: Model{Ref: "file:/srv/large.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
				{
					Addr: `pool.chat["small"]`, Name: "chat", ID: "chat-small", Engine: "llamacpp", Replicas: 1, Port: 9000,
					Model: Model{Ref: "file:/srv/small.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
			},
		},
		{
			name: "count makes indexed pools with count.index in scope",
			files: map[string]string{"main.llorch.hcl": `
pool "x" {
  count  = 2
  engine = "llamacpp"
  port   = 8000 + count.index * 10
  model { ref = "file:/m${count.index}.gguf" }
}
`},
			want: []*Pool{
				{
					Addr: "pool.x[0]", Name: "x", ID: "x-0", Engine: "llamacpp", Replicas: 1, Port: 8000,
					Model: Model{Ref: "file:/m0.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
				{
					Addr: "pool.x[1]", Name: "x", ID: "x-1", Engine: "llamacpp", Replicas: 1, Port: 8010,
					Model: Model{Ref: "file:/m1.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
			},
		},
		{
			name: "count of zero makes no pools",
			files: map[string]string{"main.llorch.hcl": `
pool "x" {
  count  = 0
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
}
`},
			want: nil,
		},
		{
			name: "locals refer to locals declared later and in other files",
			files: map[string]string{
				"a.llorch.hcl": `
locals {
  ref = "file:${local.dir}/${local.name}.gguf"
}
pool "chat" {
  engine = "llamacpp"
  model { ref = local.ref }
  flags  = local.flags
}
`,
				"b.llorch.hcl": `
locals {
  dir   = "/srv/${var.env}"
  name  = "qwen"
  flags = concat(["--parallel"], [tostring(local.slots)])
}
locals {
  slots = 2 * 2
}
variable "env" { default = "prod" }
`,
			},
			want: []*Pool{{
				Addr: "pool.chat", Name: "chat", ID: "chat", Engine: "llamacpp", Replicas: 1,
				Model: Model{Ref: "file:/srv/prod/qwen.gguf"}, Host: DefaultHost, Flags: []string{"--parallel", "4"},
				Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
			}},
		},
		{
			name: "pools from several files are sorted by address",
			files: map[string]string{
				"a.llorch.hcl": `pool "zeta" {
  engine = "llamacpp"
  model { ref = "file:/z.gguf" }
}`,
				"b.llorch.hcl": `pool "alpha" {
  engine = "llamacpp"
  model { ref = "file:/a.gguf" }
}`,
			},
			want: []*Pool{
				{
					Addr: "pool.alpha", Name: "alpha", ID: "alpha", Engine: "llamacpp", Replicas: 1,
					Model: Model{Ref: "file:/a.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
				{
					Addr: "pool.zeta", Name: "zeta", ID: "zeta", Engine: "llamacpp", Replicas: 1,
					Model: Model{Ref: "file:/z.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
			},
		},
		{
			name: "for_each keys become quoted addresses and file-safe IDs",
			files: map[string]string{"main.llorch.hcl": `
pool "m" {
  for_each = toset(["a b/c", "q\"${"$"}{x}"])
  engine   = "llamacpp"
  model { ref = "file:/m.gguf" }
}
`},
			want: []*Pool{
				{
					Addr: `pool.m["a b/c"]`, Name: "m", ID: "m-a-b-c", Engine: "llamacpp", Replicas: 1,
					Model: Model{Ref: "file:/m.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
				{
					Addr: `pool.m["q\"$${x}"]`, Name: "m", ID: "m-q---x-", Engine: "llamacpp", Replicas: 1,
					Model: Model{Ref: "file:/m.gguf"}, Host: DefaultHost,
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
			},
		},
		{
			name: "ports on different hosts do not conflict",
			files: map[string]string{"main.llorch.hcl": `
pool "a" {
  engine = "llamacpp"
  host   = "127.0.0.1"
  port   = 8080
  model { ref = "file:/m.gguf" }
}
pool "b" {
  engine   = "llamacpp"
  host     = "127.0.0.2"
  port     = 8080
  model { ref = "file:/m.gguf" }
}
pool "c" {
  engine   = "llamacpp"
  host     = "0.0.0.0"
  replicas = 2
  port     = 8081
  model { ref = "file:/m.gguf" }
}
`},
			want: []*Pool{
				{
					Addr: "pool.a", Name: "a", ID: "a", Engine: "llamacpp", Replicas: 1, Port: 8080,
					Model: Model{Ref: "file:/m.gguf"}, Host: "127.0.0.1",
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
				{
					Addr: "pool.b", Name: "b", ID: "b", Engine: "llamacpp", Replicas: 1, Port: 8080,
					Model: Model{Ref: "file:/m.gguf"}, Host: "127.0.0.2",
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
				{
					Addr: "pool.c", Name: "c", ID: "c", Engine: "llamacpp", Replicas: 2, Port: 8081,
					Model: Model{Ref: "file:/m.gguf"}, Host: "0.0.0.0",
					Health: DefaultHealth, Restart: DefaultRestart, Drain: DefaultDrain, Update: DefaultUpdate, Fit: FitError,
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoad(t, tc.files, tc.opts)
			// No EquateEmpty: nil and empty devices mean different things.
			if diff := cmp.Diff(tc.want, cfg.Pools, poolCmp); diff != "" {
				t.Errorf("pools differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadLeavesDevicesNilWhenAbsent(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
}`}, LoadOptions{})
	if cfg.Pools[0].Devices != nil {
		t.Errorf("Devices = %#v, want nil", cfg.Pools[0].Devices)
	}
}

func TestLoadRecordsInstanceKeys(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `
pool "one" {
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
}
pool "each" {
  for_each = toset(["k"])
  engine   = "llamacpp"
  model { ref = "file:/m.gguf" }
}
pool "counted" {
  count  = 1
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
}`}, LoadOptions{})
	tests := []struct {
		addr string
		want cty.Value
	}{
		{"pool.one", cty.NilVal},
		{`pool.each["k"]`, cty.StringVal("k")},
		{"pool.counted[0]", cty.NumberIntVal(0)},
	}
	for _, tc := range tests {
		p := cfg.Pool(tc.addr)
		if p == nil {
			t.Fatalf("no pool %s", tc.addr)
		}
		if tc.want == cty.NilVal {
			if p.Key != cty.NilVal {
				t.Errorf("%s: Key = %#v, want cty.NilVal", tc.addr, p.Key)
			}
			continue
		}
		if p.Key == cty.NilVal || !p.Key.RawEquals(tc.want) {
			t.Errorf("%s: Key = %#v, want %#v", tc.addr, p.Key, tc.want)
		}
	}
}

func TestLoadRecordsAttributeRanges(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  port   = 8080
  model {
    ref = "file:/m.gguf"
  }
  health {
    interval = "1s"
  }
  llamacpp {
    n_gpu_layers = 99
  }
}
`}, LoadOptions{})
	p := cfg.Pools[0]
	tests := []struct {
		path     string
		wantLine int
		wantCol  int
	}{
		{"engine", 2, 12},
		{"port", 3, 12},
		{"model", 4, 3},
		{"model.ref", 5, 11},
		{"health.interval", 8, 16},
		{"llamacpp", 10, 3},
		{"replicas", 1, 1}, // not set: the pool's declaration
	}
	for _, tc := range tests {
		r := p.Range(tc.path)
		if r.Filename != "main.llorch.hcl" || r.Start.Line != tc.wantLine || r.Start.Column != tc.wantCol {
			t.Errorf("Range(%q) = %s:%d:%d, want main.llorch.hcl:%d:%d", tc.path, r.Filename, r.Start.Line, r.Start.Column, tc.wantLine, tc.wantCol)
		}
	}
	if got := p.DeclRange.String(); got != "main.llorch.hcl:1,1-12" {
		t.Errorf("DeclRange = %s, want main.llorch.hcl:1,1-12", got)
	}
}

func TestLoadSettings(t *testing.T) {
	tests := []struct {
		name              string
		src               string
		wantState, wantHO string
	}{
		{"defaults without a llorch block", "", ".llorch", filepath.Join(".llorch", "handoff")},
		{"handoff dir follows a custom state dir", `llorch { state_dir = "/var/lib/llorch" }`, "/var/lib/llorch", "/var/lib/llorch/handoff"},
		{"both dirs as written, relative stays relative", `llorch {
  state_dir   = "state"
  handoff_dir = ".runtime/engines"
}`, "state", ".runtime/engines"},
		{"functions are allowed", `llorch { state_dir = lower("STATE") }`, "state", "state/handoff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoad(t, map[string]string{"main.llorch.hcl": tc.src}, LoadOptions{})
			if cfg.Settings.StateDir != tc.wantState || cfg.Settings.HandoffDir != tc.wantHO {
				t.Errorf("Settings = {%q, %q}, want {%q, %q}", cfg.Settings.StateDir, cfg.Settings.HandoffDir, tc.wantState, tc.wantHO)
			}
		})
	}
}

func TestLoadReportsSettingsBeforeEvaluatingPools(t *testing.T) {
	const pool = `
pool "chat" {
  engine = "llamacpp"
  port   = var.port
  model { ref = "file:/m.gguf" }
}
`
	tests := []struct {
		name      string
		src       string
		wantCalls []string // the state dirs OnSettings was called with
	}{
		{"with a llorch block", `llorch { state_dir = "state" }` + pool, []string{"state"}},
		{"defaults without one", pool, []string{".llorch"}},
		{"not for a block with errors", `llorch { state_dir = "" }` + pool, nil},
		{"not for files that do not parse", `llorch { state_dir = "state" ` + pool, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			// var.port has no value: the pool fails after OnSettings ran.
			_, diags := load(t, map[string]string{"main.llorch.hcl": "variable \"port\" { type = number }\n" + tc.src}, LoadOptions{
				OnSettings: func(s Settings) { calls = append(calls, s.StateDir) },
			})
			if !diags.HasErrors() {
				t.Fatal("Load succeeded without a value for var.port")
			}
			if !slices.Equal(calls, tc.wantCalls) {
				t.Errorf("OnSettings called with %q, want %q", calls, tc.wantCalls)
			}
		})
	}
}

func TestSettingsCannotUseVariables(t *testing.T) {
	fs := afero.NewMemMapFs()
	src := `variable "root" { default = "/srv" }
llorch { state_dir = "${var.root}/llorch" }
`
	if err := afero.WriteFile(fs, "/cfg/main.llorch.hcl", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() hcl.Diagnostics{
		"Load":         func() hcl.Diagnostics { _, d := Load(fs, "/cfg", LoadOptions{}); return d },
		"LoadSettings": func() hcl.Diagnostics { _, d := LoadSettings(fs, "/cfg"); return d },
	} {
		t.Run(name, func(t *testing.T) {
			diags := load()
			if len(diags) != 1 || diags[0].Summary != "Variables not allowed" || diags[0].Subject.Start.Line != 2 {
				t.Fatalf("diags = %v, want one \"Variables not allowed\" on line 2", diags)
			}
		})
	}
}

func TestLoadSettingsNeedsNoVariableValues(t *testing.T) {
	fs := afero.NewMemMapFs()
	src := `llorch { state_dir = "state" }
variable "port" { type = number }
pool "chat" {
  engine = "llamacpp"
  port   = var.port
  model { ref = "file:/m.gguf" }
}
`
	if err := afero.WriteFile(fs, "/cfg/main.llorch.hcl", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, diags := Load(fs, "/cfg", LoadOptions{}); !diags.HasErrors() {
		t.Fatal("Load without a value for var.port should fail")
	}
	cfg, diags := LoadSettings(fs, "/cfg")
	if diags.HasErrors() {
		t.Fatalf("LoadSettings: %v", diags)
	}
	if cfg.Settings.StateDir != "state" || len(cfg.Files) != 1 {
		t.Errorf("Settings = %+v, files = %d", cfg.Settings, len(cfg.Files))
	}
}

func TestLoadWithoutConfigFilesIsEmptyNotAnError(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"notes.txt": "hi", "x.llorch.hcl.bak": "pool {"}, LoadOptions{})
	if len(cfg.Files) != 0 || len(cfg.Pools) != 0 {
		t.Errorf("got %d files and %d pools, want none", len(cfg.Files), len(cfg.Pools))
	}
	if cfg.Settings.StateDir != DefaultStateDir {
		t.Errorf("StateDir = %q, want the default", cfg.Settings.StateDir)
	}
}

func TestLoadReadsOnlyTopLevelConfigFilesInOrder(t *testing.T) {
	cfg := mustLoad(t, map[string]string{
		"b.llorch.hcl":          "",
		"a.llorch.hcl":          "",
		"sub/c.llorch.hcl":      `pool "broken" {`,
		"main.tf":               "nope {",
		"x.auto.llorchvars.hcl": "",
	}, LoadOptions{})
	var names []string
	for name := range cfg.Files {
		names = append(names, name)
	}
	want := []string{"a.llorch.hcl", "b.llorch.hcl", "x.auto.llorchvars.hcl"}
	if diff := cmp.Diff(want, names, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
}

func TestLoadReturnsFilesEvenWithErrors(t *testing.T) {
	cfg, diags := load(t, map[string]string{"main.llorch.hcl": "pool \"x\" {\n  engine = \n}\n"}, LoadOptions{})
	if !diags.HasErrors() {
		t.Fatal("want a syntax error")
	}
	if f := cfg.Files["main.llorch.hcl"]; f == nil || len(f.Bytes) == 0 {
		t.Errorf("Files[main.llorch.hcl] missing after a syntax error; snippets need it")
	}
}

// providerSchema stands in for a provider's GetSchema in these tests.
var providerSpec = hcldec.ObjectSpec{
	"binary":       &hcldec.AttrSpec{Name: "binary", Type: cty.String},
	"api_key":      &hcldec.AttrSpec{Name: "api_key", Type: cty.String},
	"n_gpu_layers": &hcldec.AttrSpec{Name: "n_gpu_layers", Type: cty.Number},
}

func TestLoadKeepsProviderBodiesForLaterDecoding(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `
variable "bin" { default = "llama-server" }
variable "api_key" {
  default   = "s3cret"
  sensitive = true
}
provider "llamacpp" {
  binary = var.bin
}
pool "chat" {
  for_each = { small = 10, big = 99 }
  engine   = "llamacpp"
  model { ref = "file:/m.gguf" }
  llamacpp {
    n_gpu_layers = each.value
    api_key      = var.api_key
  }
}
`}, LoadOptions{})

	pb := cfg.Providers["llamacpp"]
	if pb == nil {
		t.Fatal("no provider block")
	}
	v, diags := hcldec.Decode(pb.Body, providerSpec, pb.EvalCtx)
	if diags.HasErrors() {
		t.Fatalf("decoding provider block: %s", diags)
	}
	if got := v.GetAttr("binary"); !got.RawEquals(cty.StringVal("llama-server")) {
		t.Errorf("provider binary = %#v", got)
	}

	for addr, layers := range map[string]int64{`pool.chat["small"]`: 10, `pool.chat["big"]`: 99} {
		p := cfg.Pool(addr)
		if p.ProviderBody == nil {
			t.Fatalf("%s: ProviderBody is nil", addr)
		}
		v, diags := hcldec.Decode(p.ProviderBody, providerSpec, p.EvalCtx)
		if diags.HasErrors() {
			t.Fatalf("%s: decoding pool block: %s", addr, diags)
		}
		if got := v.GetAttr("n_gpu_layers"); !got.RawEquals(cty.NumberIntVal(layers)) {
			t.Errorf("%s: n_gpu_layers = %#v, want %d", addr, got, layers)
		}
		key := v.GetAttr("api_key")
		if !key.HasMark(SensitiveMark) {
			t.Errorf("%s: api_key from a sensitive variable lost its mark: %#v", addr, key)
		}
		if p.SensitivePaths != nil {
			t.Errorf("%s: SensitivePaths = %q; provider bodies are tracked by marks, not paths", addr, p.SensitivePaths)
		}
	}
}

func TestLoadRecordsSensitivePaths(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `
variable "hf_token" {
  default   = "hf_secret"
  sensitive = true
}
variable "plain" { default = "visible" }
locals {
  team = upper(var.hf_token)
}
pool "chat" {
  engine = "llamacpp"
  model { ref = "hf:org/repo/${var.hf_token}.gguf" }
  env = {
    HF_TOKEN = var.hf_token
    PLAIN    = var.plain
  }
  labels = {
    team  = local.team
    owner = "me"
  }
}
`}, LoadOptions{})
	p := cfg.Pools[0]
	want := []string{"env.HF_TOKEN", "labels.team", "model.ref"}
	if diff := cmp.Diff(want, p.SensitivePaths); diff != "" {
		t.Errorf("SensitivePaths (-want +got):\n%s", diff)
	}
	if p.Env["HF_TOKEN"] != "hf_secret" {
		t.Errorf("Env[HF_TOKEN] = %q: pool values must be usable, unmarked", p.Env["HF_TOKEN"])
	}
	if v := cfg.Variables["hf_token"]; !v.Sensitive || v.Value.IsMarked() {
		t.Errorf("Variables[hf_token]: Sensitive=%v, marked=%v; want the flag set and the value unmarked", v.Sensitive, v.Value.IsMarked())
	}
}

func TestLoadMarksWholeMapWhenTheMapIsSensitive(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `
variable "env" {
  type      = map(string)
  default   = { A = "1" }
  sensitive = true
}
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
  env    = var.env
}
`}, LoadOptions{})
	if diff := cmp.Diff([]string{"env"}, cfg.Pools[0].SensitivePaths); diff != "" {
		t.Errorf("SensitivePaths (-want +got):\n%s", diff)
	}
}

func TestLoadUsesDefaultEnginesWhenNoneGiven(t *testing.T) {
	mustLoad(t, map[string]string{"main.llorch.hcl": `
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
}`}, LoadOptions{Engines: nil})
	_, diags := load(t, map[string]string{"main.llorch.hcl": `
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
}`}, LoadOptions{Engines: []string{"vllm"}})
	checkDiags(t, diags, []string{
		`main.llorch.hcl:3:12: Unknown engine: There is no engine named "llamacpp". The only known engine is "vllm". A third-party engine needs its provider plugin, llorch-provider-llamacpp, in .llorch/plugins, $LLORCH_PLUGIN_DIR or ~/.llorch/plugins.`,
	})
}

func TestLoadReadsAbsoluteDirectory(t *testing.T) {
	fs := memFS(t, map[string]string{"/etc/llorch/main.llorch.hcl": `
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:/m.gguf" }
  port = -1
}`})
	cfg, diags := Load(fs, "/etc/llorch", LoadOptions{Environ: []string{}})
	checkDiags(t, diags, []string{
		`/etc/llorch/main.llorch.hcl:5:10: Invalid port: port -1 is outside the range 1–65535. Use 0, or leave port out, to pick free ports at apply time.`,
	})
	if cfg.Dir != "/etc/llorch" || cfg.Files["/etc/llorch/main.llorch.hcl"] == nil {
		t.Errorf("Dir = %q, Files = %v", cfg.Dir, cfg.Files)
	}
}

func TestLoadReportsUnreadableDirectory(t *testing.T) {
	_, diags := Load(memFS(t, nil), "/nope", LoadOptions{Environ: []string{}})
	checkDiags(t, diags, []string{
		"Failed to read directory: The configuration directory /nope could not be listed: file does not exist.",
	})
}
