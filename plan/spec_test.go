package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/plantest"
)

const secret = "sk-very-secret-token-42"

func sha(jsonText string) string {
	sum := sha256.Sum256([]byte(jsonText))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestSpecFillsDefaultsAndFormatsDurations(t *testing.T) {
	d := testDesired(t, plantest.Pool("pool.chat"), nil)
	s := d.Spec
	if s.Health.Interval != "100ms" || s.Health.StartTimeout != "2m0s" || s.Restart.Cooldown != "5m0s" || s.Drain.Deadline != "30s" {
		t.Errorf("durations = %q %q %q %q", s.Health.Interval, s.Health.StartTimeout, s.Restart.Cooldown, s.Drain.Deadline)
	}
	if s.Restart.Policy != config.RestartAlways || s.Update.Strategy != config.CreateBeforeDestroy || s.Host != "127.0.0.1" {
		t.Errorf("defaults not filled: %+v", s)
	}
	if !strings.HasPrefix(d.SpecHash, "sha256:") || len(d.SpecHash) != len("sha256:")+64 {
		t.Errorf("SpecHash = %q", d.SpecHash)
	}
	b, _ := json.Marshal(s)
	if d.SpecHash != sha(string(b)) {
		t.Errorf("SpecHash is not the sha256 of the spec's JSON")
	}
}

func TestSpecNormalization(t *testing.T) {
	tests := []struct {
		name      string
		a, b      func(*config.Pool)
		wantEqual bool
	}{
		{"absent flags equal empty flags", func(p *config.Pool) {}, func(p *config.Pool) { p.Flags = []string{} }, true},
		{"absent env equals empty env", func(p *config.Pool) {}, func(p *config.Pool) { p.Env = map[string]string{} }, true},
		{"absent labels equal empty labels", func(p *config.Pool) {}, func(p *config.Pool) { p.Labels = map[string]string{} }, true},
		{"unset devices differ from CPU only", func(p *config.Pool) {}, func(p *config.Pool) { p.Devices = []int{} }, false},
		{"flag order matters", func(p *config.Pool) { p.Flags = []string{"-a", "-b"} }, func(p *config.Pool) { p.Flags = []string{"-b", "-a"} }, false},
		{"a label changes the hash", func(p *config.Pool) {}, func(p *config.Pool) { p.Labels = map[string]string{"team": "x"} }, false},
		{"a default spelled out is the default", func(p *config.Pool) {}, func(p *config.Pool) { p.Health = config.DefaultHealth }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pa, pb := plantest.Pool("pool.chat"), plantest.Pool("pool.chat")
			tc.a(pa)
			tc.b(pb)
			da, db := testDesired(t, pa, nil), testDesired(t, pb, nil)
			if got := da.SpecHash == db.SpecHash; got != tc.wantEqual {
				t.Fatalf("hashes equal = %v, want %v", got, tc.wantEqual)
			}
		})
	}
}

func TestSpecRecordsDevicesNilAndEmptyDifferently(t *testing.T) {
	p := plantest.Pool("pool.chat")
	p.Devices = []int{}
	b, _ := json.Marshal(testDesired(t, p, nil).Spec)
	if !strings.Contains(string(b), `"devices":[]`) {
		t.Errorf("CPU-only devices not recorded as []: %s", b)
	}
	b, _ = json.Marshal(testDesired(t, plantest.Pool("pool.chat"), nil).Spec)
	if !strings.Contains(string(b), `"devices":null`) {
		t.Errorf("unset devices not recorded as null: %s", b)
	}
}

func TestSensitiveValuesAreHashedInSpec(t *testing.T) {
	tests := []struct {
		name          string
		setup         func(t *testing.T, p *config.Pool)
		wantSensitive []string
		wantInSpec    string // a fragment of the spec JSON
	}{
		{
			name: "schema sensitive attribute",
			setup: func(t *testing.T, p *config.Pool) {
				plantest.SetProviderBlock(t, p, `api_key = "`+secret+`"`, nil)
			},
			wantSensitive: []string{"llamacpp.api_key"},
			wantInSpec:    `"api_key":"` + sha(`"`+secret+`"`) + `"`,
		},
		{
			name: "attribute set from a sensitive variable",
			setup: func(t *testing.T, p *config.Pool) {
				plantest.SetProviderBlock(t, p, `build_ref = var.tok`, map[string]cty.Value{"tok": cty.StringVal(secret)}, "tok")
			},
			wantSensitive: []string{"llamacpp.build_ref"},
			wantInSpec:    `"build_ref":"` + sha(`"`+secret+`"`) + `"`,
		},
		{
			name: "nested block attribute from a sensitive variable",
			setup: func(t *testing.T, p *config.Pool) {
				plantest.SetProviderBlock(t, p, "source {\n git = var.tok\n}", map[string]cty.Value{"tok": cty.StringVal(secret)}, "tok")
			},
			wantSensitive: []string{"llamacpp.source.git"},
			wantInSpec:    `"git":"` + sha(`"`+secret+`"`) + `"`,
		},
		{
			name: "list element from a sensitive variable",
			setup: func(t *testing.T, p *config.Pool) {
				plantest.SetProviderBlock(t, p, `extra_args = ["--x", var.tok]`, map[string]cty.Value{"tok": cty.StringVal(secret)}, "tok")
			},
			wantSensitive: []string{"llamacpp.extra_args"},
			wantInSpec:    `"extra_args":["--x","` + sha(`"`+secret+`"`) + `"]`,
		},
		{
			name: "env key from a sensitive variable",
			setup: func(t *testing.T, p *config.Pool) {
				p.Env = map[string]string{"HF_TOKEN": secret, "A": "b"}
				p.SensitivePaths = []string{"env.HF_TOKEN"}
			},
			wantSensitive: []string{"env.HF_TOKEN"},
			wantInSpec:    `"env":{"A":"b","HF_TOKEN":"` + sha(`"`+secret+`"`) + `"}`,
		},
		{
			name: "env key written with brackets",
			setup: func(t *testing.T, p *config.Pool) {
				p.Env = map[string]string{"HF_TOKEN": secret}
				p.SensitivePaths = []string{`env["HF_TOKEN"]`}
			},
			wantSensitive: []string{"env.HF_TOKEN"},
			wantInSpec:    `"HF_TOKEN":"` + sha(`"`+secret+`"`) + `"`,
		},
		{
			name: "whole flags list",
			setup: func(t *testing.T, p *config.Pool) {
				p.Flags = []string{"--api-key", secret}
				p.SensitivePaths = []string{"flags"}
			},
			wantSensitive: []string{"flags"},
			wantInSpec:    `"flags":["` + sha(`"--api-key"`) + `","` + sha(`"`+secret+`"`) + `"]`,
		},
		{
			name: "one flag",
			setup: func(t *testing.T, p *config.Pool) {
				p.Flags = []string{"--api-key", secret}
				p.SensitivePaths = []string{"flags[1]"}
			},
			wantSensitive: []string{"flags"},
			wantInSpec:    `"flags":["--api-key","` + sha(`"`+secret+`"`) + `"]`,
		},
		{
			name: "model ref",
			setup: func(t *testing.T, p *config.Pool) {
				p.Model.Ref = "https://user:" + secret + "@example.com/m.gguf"
				p.SensitivePaths = []string{"model.ref"}
			},
			wantSensitive: []string{"model.ref"},
			wantInSpec:    `"ref":"` + sha(`"https://user:`+secret+`@example.com/m.gguf"`) + `"`,
		},
		{
			name:          "a number is shown as sensitive but kept",
			setup:         func(t *testing.T, p *config.Pool) { p.Port = 8080; p.SensitivePaths = []string{"port"} },
			wantSensitive: []string{"port"},
			wantInSpec:    `"port":8080`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := plantest.Pool("pool.chat")
			tc.setup(t, p)
			d := testDesired(t, p, nil)
			b, _ := json.Marshal(d.Spec)
			if strings.Contains(string(b), secret) || strings.Contains(d.SpecHash, secret) {
				t.Fatalf("secret in spec: %s", b)
			}
			if !strings.Contains(string(b), tc.wantInSpec) {
				t.Errorf("spec %s\ndoes not contain %s", b, tc.wantInSpec)
			}
			for _, s := range tc.wantSensitive {
				if !containsPath(d.Sensitive, s) {
					t.Errorf("Sensitive = %q, want it to hold %q", d.Sensitive, s)
				}
			}
			if p.Env["HF_TOKEN"] != "" && p.Env["HF_TOKEN"] != secret {
				t.Errorf("redaction changed the configuration's own env map")
			}
		})
	}
}

func TestSensitiveMarkAndSchemaSensitiveHashOnce(t *testing.T) {
	p := plantest.Pool("pool.chat")
	plantest.SetProviderBlock(t, p, `api_key = var.k`, map[string]cty.Value{"k": cty.StringVal(secret)}, "k")
	d := testDesired(t, p, nil)
	want := `"api_key":"` + sha(`"`+secret+`"`) + `"`
	if !strings.Contains(string(d.Spec.Provider), want) {
		t.Fatalf("provider = %s, want %s", d.Spec.Provider, want)
	}
}

func TestProviderBlockIsRecordedAsSortedJSON(t *testing.T) {
	p := plantest.Pool("pool.chat")
	plantest.SetProviderBlock(t, p, "n_gpu_layers = 99\nsource {\n  ref = \"b6600\"\n}", nil)
	got := string(testDesired(t, p, nil).Spec.Provider)
	want := `{"api_key":null,"build_ref":null,"extra_args":null,"n_gpu_layers":99,"source":{"git":null,"ref":"b6600"}}`
	if got != want {
		t.Fatalf("provider = %s\nwant       %s", got, want)
	}
}

func TestSpecAttrsFlattensEveryAttribute(t *testing.T) {
	p := plantest.Pool("pool.chat")
	p.Env = map[string]string{"B": "2", "A": "1"}
	plantest.SetProviderBlock(t, p, "n_gpu_layers = 99", nil)
	var paths []string
	for _, a := range SpecAttrs(testDesired(t, p, nil).Spec) {
		paths = append(paths, a.Path)
	}
	got := strings.Join(paths, " ")
	for _, want := range []string{"engine replicas model.ref model.sha256 host port devices ctx flags env.A env.B health.path",
		"update.strategy llamacpp.api_key llamacpp.build_ref llamacpp.extra_args llamacpp.n_gpu_layers llamacpp.source"} {
		if !strings.Contains(got, want) {
			t.Errorf("paths %q\ndo not contain %q", got, want)
		}
	}
}

func TestIsRedacted(t *testing.T) {
	if !IsRedacted(sha(`"x"`)) {
		t.Error("a hash is not recognised")
	}
	for _, v := range []any{"sha256:abc", "x", 3, "sha256:" + strings.Repeat("G", 64)} {
		if IsRedacted(v) {
			t.Errorf("IsRedacted(%v) = true", v)
		}
	}
}

func TestSpecHashIsStableAcrossRuns(t *testing.T) {
	p := plantest.Pool("pool.chat")
	p.Env = map[string]string{"Z": "1", "A": "2", "M": "3"}
	p.Labels = map[string]string{"b": "1", "a": "2"}
	first := testDesired(t, p, nil).SpecHash
	for range 20 {
		if h := testDesired(t, p, nil).SpecHash; h != first {
			t.Fatalf("hash changed between runs: %s vs %s", h, first)
		}
	}
}
