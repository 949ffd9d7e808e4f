// Package version holds llorch's version, stamped into state files, saved
// plans, handoff readers' expectations and `llorch version`.
package version

// Version is llorch's semantic version; release builds may override it with
// -ldflags "-X github.com/llorch/llorch/internal/version.Version=…".
var Version = "0.1.0"
