package config

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func TestPoolAddrAndID(t *testing.T) {
	tests := []struct {
		name     string
		key      cty.Value
		wantAddr string
		wantID   string
	}{
		{"chat", cty.NilVal, "pool.chat", "chat"},
		{"x", cty.NumberIntVal(0), "pool.x[0]", "x-0"},
		{"x", cty.NumberIntVal(12), "pool.x[12]", "x-12"},
		{"embed", cty.StringVal("bge"), `pool.embed["bge"]`, "embed-bge"},
		{"embed", cty.StringVal("bge-small.en_v1"), `pool.embed["bge-small.en_v1"]`, "embed-bge-small.en_v1"},
		{"m", cty.StringVal(`a"b\c`), `pool.m["a\"b\\c"]`, "m-a-b-c"},
		{"m", cty.StringVal("line\nbreak\ttab"), `pool.m["line\nbreak\ttab"]`, "m-line-break-tab"},
		{"m", cty.StringVal("${x} %{y} $z"), `pool.m["$${x} %%{y} $z"]`, "m---x----y---z"},
		{"m", cty.StringVal("\x01"), `pool.m["\u0001"]`, "m--"},
		{"m", cty.StringVal("café"), `pool.m["café"]`, "m-caf-"},
		{"ünïcode", cty.NilVal, "pool.ünïcode", "-n-code"},
	}
	for _, tc := range tests {
		t.Run(tc.wantAddr, func(t *testing.T) {
			if got := poolAddr(tc.name, tc.key); got != tc.wantAddr {
				t.Errorf("poolAddr = %s, want %s", got, tc.wantAddr)
			}
			if got := poolID(tc.name, tc.key); got != tc.wantID {
				t.Errorf("poolID = %s, want %s", got, tc.wantID)
			}
		})
	}
}

// TestPoolIDIsBounded: a name or key too long for a file name gets an ID
// of at most maxIDLen bytes, ending in a hash of the address, so two long
// names that share their start still differ.
func TestPoolIDIsBounded(t *testing.T) {
	long := strings.Repeat("p", 300)
	a, b := poolID(long, cty.NilVal), poolID(long+"q", cty.NilVal)
	k := poolID("embed", cty.StringVal(strings.Repeat("ü", 200)))
	for _, id := range []string{a, b, k} {
		if len(id) > maxIDLen {
			t.Errorf("poolID is %d bytes (%s), want at most %d", len(id), id, maxIDLen)
		}
	}
	if a == b {
		t.Errorf("two long names share the ID %s", a)
	}
	if want := strings.Repeat("p", maxIDLen-13) + "-"; !strings.HasPrefix(a, want) || len(a) != maxIDLen {
		t.Errorf("poolID = %s, want the name's start, a dash and 12 hex digits", a)
	}
	if id := poolID(strings.Repeat("p", maxIDLen), cty.NilVal); id != strings.Repeat("p", maxIDLen) {
		t.Errorf("an ID of exactly maxIDLen bytes changed to %s", id)
	}
}

func TestHostsOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"0.0.0.0", "127.0.0.1", true},
		{"10.0.0.5", "::", true},
		{"0.0.0.0", "::1", true},
		{"::1", "0:0::1", true},
		{"::ffff:127.0.0.1", "127.0.0.1", true},
		{"localhost", "LOCALHOST", true},
		{"localhost", "127.0.0.1", false}, // names are not resolved at load time
		{"gpu1.lan", "gpu2.lan", false},
	}
	for _, tc := range tests {
		t.Run(tc.a+"_"+tc.b, func(t *testing.T) {
			if got := hostsOverlap(tc.a, tc.b); got != tc.want {
				t.Errorf("hostsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := hostsOverlap(tc.b, tc.a); got != tc.want {
				t.Errorf("hostsOverlap(%q, %q) = %v, want %v (not symmetric)", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

func TestValidHost(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"::1", true},
		{"fe80::1%eth0", true},
		{"gpu-box.example.com", true},
		{"localhost", true},
		{"", false},
		{"http://localhost", false},
		{"[::1]", false},
		{"host:8080", false},
		{"-bad.example", false},
		{"two..dots", false},
		{"under_score", false},
		{"white space", false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			if got := validHost(tc.host); got != tc.want {
				t.Errorf("validHost(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}
}

func TestCheckModelRef(t *testing.T) {
	const how = `Use "file:/path/to/model.gguf", "hf:org/repo/model.gguf" (optionally followed by @revision) or an https:// URL.`
	tests := []struct {
		ref  string
		want string
	}{
		{"file:/srv/models/q.gguf", ""},
		{"file:models/q.gguf", ""},
		{"hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", ""},
		{"hf:org/repo/sub/dir/m.gguf@main", ""},
		{"https://example.com/m.gguf", ""},
		{"http://mirror.lan:8000/m.gguf", ""},
		{"file:", "names no file. " + how},
		{"hf:org", "is not a Hugging Face reference: write it as hf:org/repo/path/to/model.gguf (or hf:org/repo for engines that load a whole repository), optionally followed by @revision."},
		{"hf:org//m.gguf", "is not a Hugging Face reference: write it as hf:org/repo/path/to/model.gguf (or hf:org/repo for engines that load a whole repository), optionally followed by @revision."},
		{"https://", "has no host name. " + how},
		{"https:///m.gguf", "has no host name. " + how},
		{"s3://bucket/m.gguf", "is not a model reference. " + how},
		{"", "is not a model reference. " + how},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			if got := checkModelRef(tc.ref); got != tc.want {
				t.Errorf("checkModelRef(%q) = %q, want %q", tc.ref, got, tc.want)
			}
		})
	}
}

func TestLoadReportsBadMetaArguments(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "count from a sensitive variable",
			src: `variable "n" {
  default   = 2
  sensitive = true
}
pool "x" {
  count  = var.n
  engine = "llamacpp"
  ` + okModel + `
}`,
			want: []string{`main.llorch.hcl:6:12: Invalid count argument: The "count" value comes from a sensitive value, which would show in pool addresses. Use a value that is not sensitive.`},
		},
		{
			name: "flags from a sensitive variable",
			src: `variable "alias" {
  default   = "s3cret-alias"
  sensitive = true
}
pool "x" {
  engine = "llamacpp"
  flags  = ["--parallel", "2", "--alias", var.alias]
  ` + okModel + `
}`,
			want: []string{`main.llorch.hcl:7:12: Sensitive value in flags: flags holds a value from a sensitive variable, and engine arguments are visible to every user of this machine (ps, /proc/PID/cmdline). Pass it through env instead, which only the engine's owner can read: llama-server reads its options from LLAMA_ARG_* variables too (for example env = { LLAMA_ARG_ALIAS = var.alias } for --alias), and llamacpp { api_key = ... } sets LLAMA_API_KEY.`},
		},
		{
			name: "null count",
			src: `pool "x" {
  count  = null
  engine = "llamacpp"
  ` + okModel + `
}`,
			want: []string{`main.llorch.hcl:2:12: Invalid count argument: The "count" value is null. A whole number, 0 or more, is required.`},
		},
		{
			name: "count that is not a number",
			src: `pool "x" {
  count  = "many"
  engine = "llamacpp"
  ` + okModel + `
}`,
			want: []string{`main.llorch.hcl:2:12: Invalid count argument: The "count" value is unsuitable: a number is required.`},
		},
		{
			name: "null for_each",
			src: `pool "x" {
  for_each = null
  engine   = "llamacpp"
  ` + okModel + `
}`,
			want: []string{`main.llorch.hcl:2:14: Invalid for_each argument: The "for_each" value is null. A map, or a set of strings, is required.`},
		},
		{
			name: "for_each over a string",
			src: `pool "x" {
  for_each = "abc"
  engine   = "llamacpp"
  ` + okModel + `
}`,
			want: []string{`main.llorch.hcl:2:14: Invalid for_each argument: The "for_each" value must be a map, or a set of strings, and this is a string.`},
		},
		{
			name: "variable attributes of the wrong type",
			src: `variable "x" {
  description = ["a"]
  sensitive   = "very"
  default     = 1
}`,
			want: []string{
				`main.llorch.hcl:2:17: Incorrect attribute value type: Inappropriate value for attribute "description": string required, but have tuple.`,
				`main.llorch.hcl:3:17: Incorrect attribute value type: Inappropriate value for attribute "sensitive": a bool is required.`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := load(t, map[string]string{"main.llorch.hcl": tc.src}, LoadOptions{})
			checkDiags(t, diags, tc.want)
		})
	}
}

func TestIsLiteral(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{`"llamacpp"`, true},
		{`2`, true},
		{`["--parallel", "4"]`, true},
		{`{ team = "search", "x-y" = 1 }`, true},
		{`"file:${var.models}/q.gguf"`, false},
		{`var.models`, false},
		{`[var.a]`, false},
		{`{ team = local.team }`, false},
		{`{ (var.k) = 1 }`, false},
		{`{ each = 1 }`, true},
		{`upper("x")`, false},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			expr, diags := hclsyntax.ParseExpression([]byte(tc.expr), "x.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got := isLiteral(expr); got != tc.want {
				t.Errorf("isLiteral(%s) = %v, want %v", tc.expr, got, tc.want)
			}
			if tc.want && len(expr.Variables()) != 0 {
				t.Errorf("%s is called literal but refers to %d variables", tc.expr, len(expr.Variables()))
			}
		})
	}
}
