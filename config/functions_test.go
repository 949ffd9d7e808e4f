package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// testLoader is a loader with just enough set up to call its functions.
func testLoader(t *testing.T, files map[string]string, environ []string) *loader {
	t.Helper()
	return &loader{fs: memFS(t, files), dir: ".", environ: environMap(environ), fileReads: map[string][]byte{}}
}

func TestFunctionsAreTheDocumentedSet(t *testing.T) {
	want := strings.Fields(`abs can ceil chomp coalesce coalescelist compact concat contains distinct element env file
		flatten floor format formatlist indent join jsondecode jsonencode keys length log lookup lower max merge
		min parseint pow range regex regexall replace reverse setintersection setproduct setsubtract setunion
		signum slice sort split strrev substr title tolist tomap tonumber toset tostring trim trimprefix
		trimspace trimsuffix try upper values zipmap`)
	got := sortedKeys(testLoader(t, nil, nil).functions())
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("function names (-want +got):\n%s", diff)
	}
}

func TestFunctions(t *testing.T) {
	l := testLoader(t, map[string]string{"data/prompt.txt": "You are helpful.\n"}, []string{"MODELS=/srv/models"})
	ctx := &hcl.EvalContext{Functions: l.functions()}
	tests := []struct {
		family, expr, want string
	}{
		{"numeric", `abs(-3)`, `3`},
		{"numeric", `ceil(1.2)`, `2`},
		{"numeric", `floor(1.8)`, `1`},
		{"numeric", `log(8, 2)`, `3`},
		{"numeric", `max(1, 7, 3)`, `7`},
		{"numeric", `min(4, 2)`, `2`},
		{"numeric", `parseint("ff", 16)`, `255`},
		{"numeric", `pow(2, 10)`, `1024`},
		{"numeric", `signum(-9)`, `-1`},

		{"string", `chomp("x\n")`, `"x"`},
		{"string", `format("%s-r%d", "chat", 1)`, `"chat-r1"`},
		{"string", `formatlist("--%s", ["a", "b"])`, `["--a","--b"]`},
		{"string", `indent(2, "a\nb")`, `"a\n  b"`},
		{"string", `join(",", ["a", "b"])`, `"a,b"`},
		{"string", `lower("GGUF")`, `"gguf"`},
		{"string", `upper("gguf")`, `"GGUF"`},
		{"string", `regex("q(\\d)", "qwen-q4")`, `["4"]`},
		{"string", `regexall("\\d", "a1b2")`, `["1","2"]`},
		{"string", `replace("a-b-c", "-", "_")`, `"a_b_c"`},
		{"string", `replace("q4_k_m", "/_[a-z]/", "")`, `"q4"`},
		{"string", `split(",", "a,b")`, `["a","b"]`},
		{"string", `strrev("abc")`, `"cba"`},
		{"string", `substr("qwen2.5", 0, 4)`, `"qwen"`},
		{"string", `title("hello world")`, `"Hello World"`},
		{"string", `trim("--x--", "-")`, `"x"`},
		{"string", `trimprefix("file:/m", "file:")`, `"/m"`},
		{"string", `trimsuffix("m.gguf", ".gguf")`, `"m"`},
		{"string", `trimspace("  x ")`, `"x"`},

		{"collection", `coalesce("", "b")`, `"b"`},
		{"collection", `coalesce(null, 2)`, `2`},
		{"collection", `coalescelist([], ["x"])`, `["x"]`},
		{"collection", `compact(["a", "", "b"])`, `["a","b"]`},
		{"collection", `concat(["a"], ["b"])`, `["a","b"]`},
		{"collection", `contains(["a", "b"], "b")`, `true`},
		{"collection", `distinct(["a", "a", "b"])`, `["a","b"]`},
		{"collection", `element(["a", "b"], 3)`, `"b"`},
		{"collection", `flatten([["a"], ["b", ["c"]]])`, `["a","b","c"]`},
		{"collection", `keys({ b = 1, a = 2 })`, `["a","b"]`},
		{"collection", `values({ b = 1, a = 2 })`, `[2,1]`},
		{"collection", `length(["a", "b"])`, `2`},
		{"collection", `length("héllo")`, `5`},
		{"collection", `length({ a = 1, b = "x" })`, `2`},
		{"collection", `lookup({ a = "x" }, "b", "default")`, `"default"`},
		{"collection", `merge({ a = 1 }, { b = 2 })`, `{"a":1,"b":2}`},
		{"collection", `range(3)`, `[0,1,2]`},
		{"collection", `reverse(["a", "b"])`, `["b","a"]`},
		{"collection", `setintersection(["a", "b"], ["b", "c"])`, `["b"]`},
		{"collection", `setproduct(["a"], ["x", "y"])`, `[["a","x"],["a","y"]]`},
		{"collection", `setsubtract(["a", "b"], ["a"])`, `["b"]`},
		{"collection", `setunion(["a"], ["b"])`, `["a","b"]`},
		{"collection", `slice(["a", "b", "c"], 1, 3)`, `["b","c"]`},
		{"collection", `sort(["b", "a"])`, `["a","b"]`},
		{"collection", `zipmap(["a", "b"], [1, 2])`, `{"a":1,"b":2}`},

		{"encoding", `jsonencode({ a = [1, "x"] })`, `"{\"a\":[1,\"x\"]}"`},
		{"encoding", `jsondecode("{\"a\":true}")`, `{"a":true}`},

		{"conversion", `tolist(toset(["b", "a"]))`, `["a","b"]`},
		{"conversion", `tomap({ a = "x" })`, `{"a":"x"}`},
		{"conversion", `tonumber("42")`, `42`},
		{"conversion", `tostring(42)`, `"42"`},
		{"conversion", `toset(["a", "a"])`, `["a"]`},

		{"error handling", `try(tonumber("x"), 7)`, `7`},
		{"error handling", `can(tonumber("x"))`, `false`},

		{"environment", `file("data/prompt.txt")`, `"You are helpful.\n"`},
		{"environment", `env("MODELS")`, `"/srv/models"`},
		{"environment", `env("UNSET")`, `""`},
	}
	for _, tc := range tests {
		t.Run(tc.family+"/"+tc.expr, func(t *testing.T) {
			expr, diags := hclsyntax.ParseExpression([]byte(tc.expr), "test.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatalf("parsing: %s", diags)
			}
			v, diags := expr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("evaluating: %s", diags)
			}
			got, err := ctyjson.SimpleJSONValue{Value: v}.MarshalJSON()
			if err != nil {
				t.Fatalf("encoding %#v: %v", v, err)
			}
			if string(got) != tc.want {
				t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
			}
		})
	}
}

func TestFunctionErrors(t *testing.T) {
	l := testLoader(t, map[string]string{"bin.dat": "\xff\xfe"}, nil)
	ctx := &hcl.EvalContext{Functions: l.functions()}
	tests := []struct {
		expr, want string
	}{
		{`file("nope.txt")`, `Invalid value for "path" parameter: no file exists at nope.txt; relative paths are read from the configuration directory.`},
		{`file("bin.dat")`, `Invalid value for "path" parameter: the contents of bin.dat are not valid UTF-8 text.`},
		{`coalesce("", null)`, `Call to function "coalesce" failed: no non-null, non-empty-string arguments.`},
		{`length(true)`, `Invalid value for "value" parameter: argument must be a string, a collection or a structural type.`},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			expr, _ := hclsyntax.ParseExpression([]byte(tc.expr), "test.hcl", hcl.InitialPos)
			_, diags := expr.Value(ctx)
			if len(diags) != 1 || diags[0].Detail != tc.want {
				t.Errorf("diagnostics = %v, want one with detail %q", diagStrings(diags), tc.want)
			}
		})
	}
}

func TestFileAndEnvInConfiguration(t *testing.T) {
	fs := memFS(t, map[string]string{
		"/etc/llorch/main.llorch.hcl": `
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:${env("MODELS")}/${trimspace(file("model-name.txt"))}" }
  labels = { home = env("NOT_SET") }
}`,
		"/etc/llorch/model-name.txt": "qwen.gguf\n",
	})
	cfg, diags := Load(fs, "/etc/llorch", LoadOptions{Environ: []string{"MODELS=/srv/models"}})
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diagStrings(diags))
	}
	p := cfg.Pools[0]
	if p.Model.Ref != "file:/srv/models/qwen.gguf" || p.Labels["home"] != "" {
		t.Errorf("Model.Ref = %q, Labels = %v", p.Model.Ref, p.Labels)
	}
}
