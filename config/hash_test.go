package config

import (
	"regexp"
	"testing"

	"github.com/spf13/afero"
)

func TestHash(t *testing.T) {
	base := map[string]string{
		"main.llorch.hcl": `variable "models" { default = "/srv" }
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:${var.models}/${trimspace(file("name.txt"))}" }
  labels = { home = env("TEAM") }
}`,
		"name.txt":  "q.gguf",
		"notes.txt": "not configuration",
	}
	baseEnv := []string{"TEAM=search", "UNRELATED=1"}
	baseHash := func(t *testing.T) string {
		t.Helper()
		return mustLoad(t, base, LoadOptions{Environ: baseEnv}).Hash
	}
	with := func(name, src string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		m[name] = src
		return m
	}

	h := baseHash(t)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(h) {
		t.Fatalf("Hash = %q, want sha256:<64 hex>", h)
	}
	if again := baseHash(t); again != h {
		t.Fatalf("Hash is not deterministic: %s then %s", h, again)
	}

	tests := []struct {
		name    string
		files   map[string]string
		opts    LoadOptions
		changes bool
	}{
		{"same inputs", base, LoadOptions{Environ: baseEnv}, false},
		{"an unrelated file changed", with("notes.txt", "other"), LoadOptions{Environ: baseEnv}, false},
		{"an unrelated environment variable changed", base, LoadOptions{Environ: []string{"TEAM=search", "UNRELATED=2"}}, false},
		{"a -var equal to the default", base, LoadOptions{Environ: baseEnv, Vars: []VarArg{{Name: "models", Value: "/srv"}}}, false},
		{"a configuration byte changed", with("main.llorch.hcl", base["main.llorch.hcl"]+"\n"), LoadOptions{Environ: baseEnv}, true},
		{"a new configuration file", with("z.llorch.hcl", ""), LoadOptions{Environ: baseEnv}, true},
		{"a variable value changed", base, LoadOptions{Environ: baseEnv, Vars: []VarArg{{Name: "models", Value: "/data"}}}, true},
		{"an auto variables file appeared", with("a.auto.llorchvars.hcl", `models = "/srv"`), LoadOptions{Environ: baseEnv}, true},
		{"a file read by file() changed", with("name.txt", "r.gguf"), LoadOptions{Environ: baseEnv}, true},
		{"an environment variable read by env() changed", base, LoadOptions{Environ: []string{"TEAM=chat", "UNRELATED=1"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustLoad(t, tc.files, tc.opts).Hash
			if changed := got != h; changed != tc.changes {
				t.Errorf("hash changed = %v, want %v", changed, tc.changes)
			}
		})
	}
}

func TestHashDoesNotDependOnTheDirectory(t *testing.T) {
	src := []byte("pool \"chat\" {\n  engine = \"llamacpp\"\n  model { ref = \"file:/m.gguf\" }\n}\n")
	fs := afero.NewMemMapFs()
	for _, dir := range []string{"/a", "/b/c"} {
		if err := afero.WriteFile(fs, dir+"/main.llorch.hcl", src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, diags := Load(fs, "/a", LoadOptions{Environ: []string{}})
	if len(diags) > 0 {
		t.Fatal(diagStrings(diags))
	}
	b, _ := Load(fs, "/b/c", LoadOptions{Environ: []string{}})
	if a.Hash != b.Hash {
		t.Errorf("the same files in two directories hash differently: %s vs %s", a.Hash, b.Hash)
	}
}
