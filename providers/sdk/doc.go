// Package sdk is what a third-party llorch provider imports: Serve turns a
// providers.Provider into a plugin executable with one call in main, and a
// few helpers keep schemas and config reading short.
//
//	func main() { sdk.Serve(myprovider.New()) }
//
// Build the program as llorch-provider-NAME, put it in .llorch/plugins and
// run `llorch init`. Log with Logger: the lines reach llorch's log (set
// LLORCH_LOG=debug to see them). Do not print to standard output; go-plugin
// owns it for the handshake.
//
// Subpackages: stage parses model refs and stages models into llorch's
// cache (resumable, locked, sha256-verified downloads), gguf reads GGUF
// metadata, and sdktest serves a provider in process for tests.
package sdk
