package supervisor

import (
	"debug/buildinfo"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// ProgramName is the slim supervisor binary (cmd/llorch-supervisor).
const ProgramName = "llorch-supervisor"

// ProgramEnv names a supervisor binary to use whatever its build (for
// benchmarks and for trying a build by hand).
const ProgramEnv = "LLORCH_SUPERVISOR"

// Program says which executable supervises replicas for the llorch at
// self: $LLORCH_SUPERVISOR when set; else llorch-supervisor next to self
// when it comes from exactly the same build (so the spec.json and control
// socket protocols are the same: the same source digest from make build,
// or the same clean VCS revision and time; same module version, Go and
// dependencies); else self, as `llorch supervise`. why says which, for
// debug logs.
func Program(self string) (exe, why string) {
	if p := os.Getenv(ProgramEnv); p != "" {
		return p, ProgramEnv + " names it"
	}
	sibling := filepath.Join(filepath.Dir(self), ProgramName)
	if _, err := os.Stat(sibling); err != nil {
		return self, "no " + ProgramName + " next to llorch"
	}
	own, ok := debug.ReadBuildInfo()
	if !ok {
		return self, "llorch has no build information"
	}
	other, err := buildinfo.ReadFile(sibling)
	if err != nil {
		return self, ProgramName + " has no readable build information: " + err.Error()
	}
	if msg := sameBuild(own, other); msg != "" {
		return self, ProgramName + " next to llorch is another build (" + msg + ")"
	}
	return sibling, ProgramName + " from the same build"
}

// sameBuild returns "" when a supervisor built as other speaks what the
// llorch built as own expects, and what differs otherwise. Without make
// build's source digest, a build with local modifications or without VCS
// information never matches: nothing would tell two such builds apart.
func sameBuild(own, other *debug.BuildInfo) string {
	if own.GoVersion != other.GoVersion {
		return "Go " + other.GoVersion + ", not " + own.GoVersion
	}
	if own.Main.Path != other.Main.Path || own.Main.Version != other.Main.Version {
		return "module " + other.Main.Path + "@" + other.Main.Version + ", not " + own.Main.Path + "@" + own.Main.Version
	}
	settings := func(bi *debug.BuildInfo) map[string]string {
		m := map[string]string{}
		for _, s := range bi.Settings {
			m[s.Key] = s.Value
		}
		return m
	}
	a, b := settings(own), settings(other)
	keys := []string{"GOOS", "GOARCH", "CGO_ENABLED", "-tags", "-ldflags"}
	switch {
	case strings.Contains(a["-ldflags"], "version.Source="):
		// make build stamped both with the digest of one source tree.
	case a["vcs.revision"] == "" || a["vcs.modified"] != "false":
		return "this llorch was built from a tree with local changes or without version control, and without make build's source digest"
	default:
		keys = append(keys, "vcs.revision", "vcs.time", "vcs.modified")
	}
	for _, k := range keys {
		if a[k] != b[k] {
			return k + " " + b[k] + ", not " + a[k]
		}
	}
	deps := map[string]string{}
	for _, d := range own.Deps {
		deps[d.Path] = d.Version
	}
	for _, d := range other.Deps {
		if v, ok := deps[d.Path]; !ok || v != d.Version {
			return d.Path + " " + d.Version + ", not " + v
		}
	}
	return ""
}
