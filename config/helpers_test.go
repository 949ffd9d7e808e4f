package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"
)

// memFS returns an in-memory file system holding files, by path relative
// to the configuration directory ".".
func memFS(t testing.TB, files map[string]string) afero.Fs {
	t.Helper()
	fs := afero.NewMemMapFs()
	for name, src := range files {
		if err := afero.WriteFile(fs, name, []byte(src), 0o644); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
	}
	return fs
}

// load runs Load on files in ".". A nil opts.Environ becomes empty, so
// the test's own environment never leaks in.
func load(t testing.TB, files map[string]string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	t.Helper()
	if opts.Environ == nil {
		opts.Environ = []string{}
	}
	cfg, diags := Load(memFS(t, files), ".", opts)
	if cfg == nil {
		t.Fatal("Load returned a nil *Config")
	}
	return cfg, diags
}

// mustLoad is load for configurations that must have no diagnostics.
func mustLoad(t testing.TB, files map[string]string, opts LoadOptions) *Config {
	t.Helper()
	cfg, diags := load(t, files, opts)
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics:\n%s", strings.Join(diagStrings(diags), "\n"))
	}
	return cfg
}

// diagStrings renders each diagnostic as "file:line:col: Summary: Detail",
// or "Summary: Detail" without a subject, so tests check the text and the
// position at once.
func diagStrings(diags hcl.Diagnostics) []string {
	out := make([]string, len(diags))
	for i, d := range diags {
		s := d.Summary + ": " + d.Detail
		if d.Subject != nil {
			s = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, s)
		}
		if d.Severity == hcl.DiagWarning {
			s = "warning: " + s
		}
		out[i] = s
	}
	return out
}

// checkDiags fails unless diags are exactly want, in order.
func checkDiags(t testing.TB, diags hcl.Diagnostics, want []string) {
	t.Helper()
	got := diagStrings(diags)
	if len(got) != len(want) {
		t.Errorf("got %d diagnostics, want %d:\n got: %s\nwant: %s", len(got), len(want),
			strings.Join(got, "\n      "), strings.Join(want, "\n      "))
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("diagnostic %d:\n got: %s\nwant: %s", i, got[i], want[i])
		}
	}
}
