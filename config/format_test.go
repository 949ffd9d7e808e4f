package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/afero"
)

func TestFormatSource(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "aligns equals signs and indents",
			src:  "pool \"chat\" {\nengine = \"llamacpp\"\n    replicas=2\nmodel { ref = \"file:/m.gguf\" }\n}\n",
			want: "pool \"chat\" {\n  engine   = \"llamacpp\"\n  replicas = 2\n  model { ref = \"file:/m.gguf\" }\n}\n",
		},
		{
			name: "formatted source is unchanged",
			src:  "pool \"chat\" {\n  engine = \"llamacpp\"\n}\n",
			want: "pool \"chat\" {\n  engine = \"llamacpp\"\n}\n",
		},
		{
			name: "variables file",
			src:  "models=\"/srv\"\nreplicas   =  2\n",
			want: "models   = \"/srv\"\nreplicas = 2\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, diags := FormatSource("main.llorch.hcl", []byte(tc.src))
			if len(diags) > 0 {
				t.Fatalf("diagnostics: %v", diagStrings(diags))
			}
			if string(got) != tc.want {
				t.Errorf("FormatSource:\n got: %q\nwant: %q", got, tc.want)
			}
			again, _ := FormatSource("main.llorch.hcl", got)
			if string(again) != string(got) {
				t.Errorf("formatting is not idempotent:\nonce:  %q\ntwice: %q", got, again)
			}
		})
	}
}

func TestFormatSourceRefusesSyntaxErrors(t *testing.T) {
	out, diags := FormatSource("main.llorch.hcl", []byte("pool \"chat\" {\n  engine = \n}\n"))
	if out != nil {
		t.Errorf("output = %q, want nil for a file with syntax errors", out)
	}
	checkDiags(t, diags, []string{
		`main.llorch.hcl:2:12: Invalid expression: Expected the start of an expression, but found an invalid expression token.`,
	})
}

func TestFormatTargets(t *testing.T) {
	fs := afero.NewMemMapFs()
	for _, name := range []string{
		"/cfg/main.llorch.hcl",
		"/cfg/b.llorch.hcl",
		"/cfg/prod.llorchvars.hcl",
		"/cfg/x.auto.llorchvars.hcl",
		"/cfg/README.md",
		"/cfg/main.tf",
		"/cfg/sub/inner.llorch.hcl",
		"/cfg/sub/deeper/d.llorchvars.hcl",
		"/cfg/.llorch/state.llorch.hcl",
		"/cfg/.git/x.llorch.hcl",
	} {
		if err := afero.WriteFile(fs, name, []byte("\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		path      string
		recursive bool
		want      []string
		wantErr   string
	}{
		{
			name: "directory only",
			path: "/cfg",
			want: []string{"/cfg/b.llorch.hcl", "/cfg/main.llorch.hcl", "/cfg/prod.llorchvars.hcl", "/cfg/x.auto.llorchvars.hcl"},
		},
		{
			name:      "recursive skips hidden directories",
			path:      "/cfg",
			recursive: true,
			want: []string{"/cfg/b.llorch.hcl", "/cfg/main.llorch.hcl", "/cfg/prod.llorchvars.hcl",
				"/cfg/sub/deeper/d.llorchvars.hcl", "/cfg/sub/inner.llorch.hcl", "/cfg/x.auto.llorchvars.hcl"},
		},
		{
			name: "a single file",
			path: "/cfg/main.llorch.hcl",
			want: []string{"/cfg/main.llorch.hcl"},
		},
		{
			name:    "a file of another kind",
			path:    "/cfg/main.tf",
			wantErr: "/cfg/main.tf is not a .llorch.hcl or .llorchvars.hcl file",
		},
		{
			name:    "a missing path",
			path:    "/nope",
			wantErr: "finding files to format in /nope: open /nope: file does not exist",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FormatTargets(fs, tc.path, tc.recursive)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("targets (-want +got):\n%s", diff)
			}
		})
	}
}
