package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
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

// TestProviderJSONWithoutRedactionIsWhatRedactionWouldWrite holds
// redactProvider's shortcut (cty's JSON as it is, when nothing needs
// hashing) to the bytes of the long way round.
func TestProviderJSONWithoutRedactionIsWhatRedactionWouldWrite(t *testing.T) {
	schema := &providers.Block{
		Attributes: map[string]*providers.Attribute{
			"token": {Type: cty.String, Optional: true, Sensitive: true},
			"any":   {Type: cty.DynamicPseudoType, Optional: true},
		},
		Blocks: map[string]*providers.NestedBlock{
			"auth": {Nesting: providers.NestingList, Block: providers.Block{Attributes: map[string]*providers.Attribute{
				"password": {Type: cty.String, Optional: true, Sensitive: true},
			}}},
		},
	}
	obj := func(attrs map[string]cty.Value) cty.Value {
		full := map[string]cty.Value{
			"token": cty.NullVal(cty.String),
			"any":   cty.NullVal(cty.DynamicPseudoType),
			"auth":  cty.ListValEmpty(cty.Object(map[string]cty.Type{"password": cty.String})),
		}
		for k, v := range attrs {
			full[k] = v
		}
		return cty.ObjectVal(full)
	}
	tests := []struct {
		name       string
		val        cty.Value
		wantRedact bool
	}{
		{"all null", obj(nil), false},
		{"strings HTML and unicode", obj(map[string]cty.Value{"any": cty.StringVal("<a&b> \u2028 日本 \"q\" \\ \t")}), false},
		{"numbers", obj(map[string]cty.Value{"any": cty.TupleVal([]cty.Value{
			cty.NumberIntVal(99), cty.NumberIntVal(-7), cty.NumberFloatVal(0.1), cty.NumberFloatVal(1e21), cty.NumberFloatVal(1.5e-7),
			cty.MustParseNumberVal("123456789012345678901234567890.5"),
		})}), false},
		{"nested collections", obj(map[string]cty.Value{"any": cty.ObjectVal(map[string]cty.Value{
			"m": cty.MapVal(map[string]cty.Value{"z": cty.True, "a": cty.False}),
			"s": cty.SetVal([]cty.Value{cty.StringVal("b"), cty.StringVal("a")}),
			"e": cty.MapValEmpty(cty.String),
			"l": cty.ListValEmpty(cty.Number),
		})}), false},
		{"list block without secrets", obj(map[string]cty.Value{"auth": cty.ListVal([]cty.Value{
			cty.ObjectVal(map[string]cty.Value{"password": cty.NullVal(cty.String)}),
		})}), false},
		{"sensitive attribute set", obj(map[string]cty.Value{"token": cty.StringVal("t")}), true},
		{"sensitive attribute empty", obj(map[string]cty.Value{"token": cty.StringVal("")}), true},
		{"sensitive attribute in a list block", obj(map[string]cty.Value{"auth": cty.ListVal([]cty.Value{
			cty.ObjectVal(map[string]cty.Value{"password": cty.NullVal(cty.String)}),
			cty.ObjectVal(map[string]cty.Value{"password": cty.StringVal("pw")}),
		})}), true},
		{"a map whose key is a sensitive name", obj(map[string]cty.Value{"any": cty.MapVal(map[string]cty.Value{"token": cty.StringVal("x")})}), false},
		{"empty object", cty.EmptyObjectVal, false},
	}
	bs := newBlockSchema(schema)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := needsRedaction(tc.val, nil, bs.sensitive); got != tc.wantRedact {
				t.Errorf("needsRedaction = %v, want %v", got, tc.wantRedact)
			}
			got, gotSens, gotSecrets, err := redactProvider(tc.val, nil, bs)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ctyjson.Marshal(tc.val, tc.val.Type())
			if err != nil {
				t.Fatal(err)
			}
			want, wantSens, wantSecrets, err := redactJSON(b, nil, bs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || !slices.Equal(gotSens, wantSens) || !slices.Equal(gotSecrets, wantSecrets) {
				t.Errorf("redactProvider = %s %q %q\nredactJSON     = %s %q %q", got, gotSens, gotSecrets, want, wantSens, wantSecrets)
			}
		})
	}
}

func TestMarkedValuesAlwaysTakeTheLongWay(t *testing.T) {
	v := cty.ObjectVal(map[string]cty.Value{"x": cty.StringVal("s").Mark(config.SensitiveMark)})
	v, marks := v.UnmarkDeepWithPaths()
	if !needsRedaction(v, marks, nil) {
		t.Fatal("needsRedaction = false for a marked value")
	}
	got, sens, _, err := redactProvider(v, marks, newBlockSchema(&providers.Block{Attributes: map[string]*providers.Attribute{"x": {Type: cty.String}}}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"x":"` + sha(`"s"`) + `"}`; string(got) != want || !slices.Equal(sens, []string{"x"}) {
		t.Errorf("redactProvider = %s %q, want %s [x]", got, sens, want)
	}
}

func TestPoolWithoutProviderBlockRecordsWhatAnEmptyBlockWould(t *testing.T) {
	p := plantest.Pool("pool.chat")
	if p.ProviderBody != nil {
		t.Fatal("the fixture pool has a provider block")
	}
	long := testDesired(t, p, nil) // decodes the empty block for the pool
	bs := newBlockSchema(providertest.Schema().Pool)
	absent := bs.absent()
	if absent == nil {
		t.Fatal("absent() = nil for a schema without required attributes")
	}
	short, err := buildSpecWith(p, absent.raw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(short.spec, long.Spec) || short.hash != long.SpecHash || len(short.sensitive) != 0 {
		t.Errorf("shortcut spec = %+v %s\nlong way       = %+v %s", short.spec, short.hash, long.Spec, long.SpecHash)
	}
	if !absent.val.RawEquals(long.ProviderConfig) {
		t.Errorf("shortcut value = %#v, long way %#v", absent.val, long.ProviderConfig)
	}
}

func TestNoShortcutWhenAnEmptyBlockIsAnError(t *testing.T) {
	bs := newBlockSchema(&providers.Block{Attributes: map[string]*providers.Attribute{"model_dir": {Type: cty.String, Required: true}}})
	if bs.absent() != nil {
		t.Error("absent() is set for a schema with a required attribute; pools without the block must report it")
	}
}
