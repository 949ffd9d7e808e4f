package supervisor

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func buildInfo(rev, modified string, deps ...*debug.Module) *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/llorch/llorch", Version: "v0.1.0"},
		Deps:      deps,
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "2026-12-07T10:00:00Z"},
			{Key: "vcs.modified", Value: modified}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"},
		},
	}
}

func TestSameBuildAcceptsOnlyTheSameCleanBuild(t *testing.T) {
	afero := &debug.Module{Path: "github.com/spf13/afero", Version: "v1.15.0"}
	grpc := &debug.Module{Path: "google.golang.org/grpc", Version: "v1.85.0"}
	own := buildInfo("abc", "false", afero, grpc)
	if msg := sameBuild(own, buildInfo("abc", "false", afero)); msg != "" {
		t.Fatalf("the same clean build (the supervisor links fewer modules): %s", msg)
	}
	for want, other := range map[string]*debug.BuildInfo{
		"vcs.revision def, not abc":                   buildInfo("def", "false", afero),
		"github.com/spf13/afero v1.14.0, not v1.15.0": buildInfo("abc", "false", &debug.Module{Path: "github.com/spf13/afero", Version: "v1.14.0"}),
		"golang.org/x/sys v0.50.0, not ":              buildInfo("abc", "false", &debug.Module{Path: "golang.org/x/sys", Version: "v0.50.0"}),
		"vcs.modified true, not false":                buildInfo("abc", "true", afero),
		"module github.com/llorch/llorch@v0.2.0, not github.com/llorch/llorch@v0.1.0": func() *debug.BuildInfo {
			b := buildInfo("abc", "false", afero)
			b.Main.Version = "v0.2.0"
			return b
		}(),
	} {
		if msg := sameBuild(own, other); msg != want {
			t.Errorf("sameBuild = %q, want %q", msg, want)
		}
	}
	if msg := sameBuild(buildInfo("abc", "true"), buildInfo("abc", "true")); !strings.Contains(msg, "local changes") {
		t.Errorf("two builds of a modified tree cannot be told apart: %q", msg)
	}
	// make build stamps both programs with one source digest: that tells
	// them apart even from a modified tree or without version control.
	stamped := func(src string) *debug.BuildInfo {
		b := buildInfo("", "")
		b.Settings = append(b.Settings, debug.BuildSetting{Key: "-ldflags", Value: "-X github.com/llorch/llorch/internal/version.Source=" + src})
		return b
	}
	if msg := sameBuild(stamped("0123456789abcdef"), stamped("0123456789abcdef")); msg != "" {
		t.Errorf("one make build: %q", msg)
	}
	if msg := sameBuild(stamped("0123456789abcdef"), stamped("fedcba9876543210")); !strings.HasPrefix(msg, "-ldflags ") {
		t.Errorf("two source trees: %q", msg)
	}
}

func TestProgramFallsBackToLlorchItself(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "llorch")
	t.Setenv(ProgramEnv, "")
	if exe, why := Program(self); exe != self || why != "no llorch-supervisor next to llorch" {
		t.Fatalf("no sibling: %s (%s)", exe, why)
	}
	if err := os.WriteFile(filepath.Join(dir, ProgramName), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if exe, why := Program(self); exe != self || !strings.HasPrefix(why, "llorch-supervisor has no readable build information") {
		t.Fatalf("a sibling that is no Go program: %s (%s)", exe, why)
	}
	t.Setenv(ProgramEnv, "/opt/llorch-supervisor")
	if exe, _ := Program(self); exe != "/opt/llorch-supervisor" {
		t.Fatalf("with %s: %s", ProgramEnv, exe)
	}
}
