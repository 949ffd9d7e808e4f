// Package version holds llorch's version, stamped into state files, saved
// plans, handoff readers' expectations and `llorch version`.
package version

// Version is llorch's semantic version; release builds may override it with
// -ldflags "-X github.com/llorch/llorch/internal/version.Version=…".
var Version = "0.1.0"

// Source is a digest of the source tree a build came from, set by `make
// build` with -ldflags -X (empty for a plain go build). Two binaries with
// the same Source were built from the same code, with or without version
// control and committed changes: llorch trusts the llorch-supervisor next
// to it only then, or when both carry the same clean VCS revision.
var Source string
