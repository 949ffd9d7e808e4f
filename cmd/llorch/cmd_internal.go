package main

import (
	"fmt"
	"os/signal"
	"syscall"

	"github.com/llorch/llorch/internal/agent"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/providers/llamacpp"
	"github.com/llorch/llorch/providers/sdk"
)

// cmdSupervise is the detached per-replica supervisor apply starts:
// `llorch supervise RUNDIR`. It is not meant to be run by hand.
func cmdSupervise(m *meta, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(m.stderr, "Usage: llorch supervise RUNDIR (started by llorch apply; not meant to be run by hand)")
		return 1
	}
	if err := supervisor.Command(m.ctx, args[0]); err != nil {
		fmt.Fprintf(m.stderr, "llorch supervise: %s\n", err)
		return 1
	}
	return 0
}

// cmdInternalPlugin serves a built-in provider over the plugin protocol, so
// built-ins and third-party plugins take the same path.
func cmdInternalPlugin(m *meta, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(m.stderr, "Usage: llorch internal-plugin NAME (started by llorch; not meant to be run by hand)")
		return 1
	}
	switch args[0] {
	case "llamacpp":
		sdk.Serve(llamacpp.New())
		return 0
	}
	fmt.Fprintf(m.stderr, "llorch internal-plugin: no built-in provider named %q\n", args[0])
	return 1
}

// cmdAgent serves the agent protocol on stdin and stdout: llorch on
// another machine starts `llorch agent -data-dir DIR` there over SSH.
func cmdAgent(m *meta, args []string) int {
	fs := flagSet("agent")
	dataDir := fs.String("data-dir", "", "llorch's directory on this machine")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *dataDir == "" {
		fmt.Fprintln(m.stderr, "Usage: llorch agent -data-dir DIR (started by llorch over SSH; not meant to be run by hand)")
		return 1
	}
	ctx, stop := signal.NotifyContext(m.ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := agent.Serve(ctx, m.stdin, m.stdout, agent.Options{DataDir: *dataDir}); err != nil {
		fmt.Fprintf(m.stderr, "llorch agent: %s\n", err)
		return 1
	}
	return 0
}
