// Package discovery is the host side of llorch's provider plugins: it finds
// them, checks them against the lock file, starts them with go-plugin and
// hands them to plan and apply as providers.Provider values.
//
// A third-party provider is an executable named llorch-provider-NAME in the
// first plugin directory that has one (./.llorch/plugins, then
// $LLORCH_PLUGIN_DIR, then ~/.llorch/plugins). Its sha256 must match the
// entry `llorch init` wrote to .llorch.lock.hcl; go-plugin checks it again
// (SecureConfig) just before the process starts. A built-in provider is
// served by the llorch executable itself, re-executed as
// `llorch internal-plugin NAME`, so built-ins take the same protocol path as
// everything else; a built-in name wins over a plugin of the same name.
//
// Plugins run over mutual TLS with keys made for each process (the AutoMTLS
// exchange with P-256 keys; see plugin.ClientTLS), a start timeout, and as
// managed clients. Their log lines (JSON on stderr) go into llorch's hclog logger;
// what they print on their redirected standard error goes to Options.Stderr.
// The last lines of both are kept per plugin, so that "not a plugin" and
// "plugin did not respond" errors can show them.
//
// Resolver.Close kills the plugins that resolver started, and only those.
// go-plugin's CleanupClients kills every managed client in the process and
// may run only once, so it is left to main as a last-resort deferred call
// rather than being called from Close, which tests call many times.
package discovery
