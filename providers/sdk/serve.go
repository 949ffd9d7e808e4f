package sdk

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llorch/llorch/internal/logging"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/plugin"
)

// Serve serves p to llorch over the plugin protocol and returns when llorch
// is done with it, after calling p.Close. Run by hand (without llorch's
// handshake in the environment) it explains what the program is on standard
// error and exits with status 1.
func Serve(p providers.Provider) {
	if os.Getenv(plugin.Handshake.MagicCookieKey) != plugin.Handshake.MagicCookieValue {
		fmt.Fprint(os.Stderr, notStartedByLlorch(os.Args))
		os.Exit(1)
	}
	// Created before go-plugin redirects os.Stderr, so that log lines go to
	// the real stderr, where llorch reads them into its own log.
	logger := Logger()
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: plugin.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{
			plugin.ProtocolVersion: {plugin.PluginName: &plugin.GRPCProviderPlugin{Impl: p}},
		},
		GRPCServer:  goplugin.DefaultGRPCServer,
		TLSProvider: plugin.ServerTLS,
		Logger:      logger,
	})
	if err := p.Close(); err != nil {
		logger.Error("closing provider", "error", err)
	}
}

// Logger returns the plugin's logger. It writes JSON lines to standard
// error, which llorch parses into its own log under the plugin's name. The
// level follows llorch's LLORCH_LOG (inherited by the plugin); when that is
// unset, warnings and errors are still written, so that llorch can show them
// if the plugin fails.
func Logger() hclog.Logger { return logger() }

var logger = sync.OnceValue(func() hclog.Logger {
	return newLogger(os.Stderr, os.Getenv)
})

func newLogger(w io.Writer, env func(string) string) hclog.Logger {
	level, ok := logging.ParseLevel(env(logging.EnvLevel))
	if !ok {
		level = hclog.Trace
	}
	if level == hclog.Off || level > hclog.Warn {
		level = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{Output: w, Level: level, JSONFormat: true})
}

// notStartedByLlorch is what a plugin run by hand prints.
func notStartedByLlorch(args []string) string {
	name := "this program"
	if len(args) > 0 {
		name = strings.Join(args, " ")
	}
	return fmt.Sprintf(`%s is a llorch provider plugin. It is started by llorch and talks to llorch
over a private channel, so there is nothing to do when it is run by hand.

To use a third-party provider, put its executable (named llorch-provider-NAME)
in .llorch/plugins, $LLORCH_PLUGIN_DIR or ~/.llorch/plugins, run `+"`llorch init`"+`,
and set engine = "NAME" in a pool.
`, name)
}
