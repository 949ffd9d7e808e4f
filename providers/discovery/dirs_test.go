package discovery

import (
	"strings"
	"testing"
)

func TestDefaultDirs(t *testing.T) {
	tests := []struct {
		name    string
		workDir string
		home    string
		env     string
		want    []string
	}{
		{name: "work dir, then home", workDir: "/w", home: "/home/u",
			want: []string{"/w/.llorch/plugins", "/home/u/.llorch/plugins"}},
		{name: "LLORCH_PLUGIN_DIR between them", workDir: "/w", home: "/home/u", env: "/opt/plugins",
			want: []string{"/w/.llorch/plugins", "/opt/plugins", "/home/u/.llorch/plugins"}},
		{name: "LLORCH_PLUGIN_DIR may list several", workDir: "/w", home: "/home/u", env: "/a:/b/",
			want: []string{"/w/.llorch/plugins", "/a", "/b", "/home/u/.llorch/plugins"}},
		{name: "no home", workDir: "/w", want: []string{"/w/.llorch/plugins"}},
		{name: "empty work dir is the current directory", home: "/home/u",
			want: []string{".llorch/plugins", "/home/u/.llorch/plugins"}},
		{name: "duplicates appear once", workDir: "/home/u", home: "/home/u", env: "/home/u/.llorch/plugins",
			want: []string{"/home/u/.llorch/plugins"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DefaultDirs(tc.workDir, tc.home, func(k string) string {
				if k == "LLORCH_PLUGIN_DIR" {
					return tc.env
				}
				return ""
			})
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewRejectsBadBuiltins(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "no executable to serve them", opts: Options{Builtins: map[string][]string{"llamacpp": {"internal-plugin", "llamacpp"}}},
			want: `built-in provider "llamacpp" needs Options.SelfExe, the llorch executable that serves it`},
		{name: "name that is not a provider name", opts: Options{SelfExe: "/bin/llorch", Builtins: map[string][]string{"Llama.cpp": nil}},
			want: `built-in provider name "Llama.cpp" is invalid: use lower-case letters, digits, '-' and '_'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Dirs = []string{}
			_, err := New(tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}
