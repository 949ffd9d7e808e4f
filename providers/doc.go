// Package providers is the Go API every llorch provider meets, whether it runs
// in process (tests), is served by the llorch binary itself (the built-in
// llamacpp provider, through self-exec), or is a third-party plugin
// executable. It holds types and interfaces only, and imports nothing of
// llorch, so that third parties can depend on it cheaply.
//
// A provider prepares engines: its Ensure builds or locates the engine binary
// and stages the model, returning a PreparedEngine. It never spawns the
// engine; the supervisor does.
package providers
