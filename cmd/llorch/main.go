package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llorch/llorch/internal/didyoumean"
)

func main() {
	// LLORCH_CPU_PROFILE=FILE writes a CPU profile of the run, as
	// Terraform's TF_CPU_PROFILE does; for performance work only.
	if path := os.Getenv("LLORCH_CPU_PROFILE"); path != "" {
		// Only this process: plugins and supervisors started from it
		// must not write (and corrupt) the same file, nor keep profiling.
		os.Unsetenv("LLORCH_CPU_PROFILE")
		if f, err := os.Create(path); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
				pprof.StopCPUProfile()
				f.Close()
				os.Exit(code)
			}
			f.Close()
		}
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// command is one subcommand: its one-line help and its body.
type command struct {
	synopsis string
	hidden   bool
	// interruptEnds: Ctrl-C is how the command ends (logs -f), not an
	// interruption to announce and report with exit status 1.
	interruptEnds bool
	run           func(m *meta, args []string) int
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"init":            {synopsis: "Record the providers in use in .llorch.lock.hcl", run: cmdInit},
		"validate":        {synopsis: "Check whether the configuration is valid", run: cmdValidate},
		"fmt":             {synopsis: "Reformat configuration files in the canonical style", run: cmdFmt},
		"plan":            {synopsis: "Show the changes needed to match the configuration", run: cmdPlan},
		"apply":           {synopsis: "Create or update pools to match the configuration", run: cmdApply},
		"destroy":         {synopsis: "Drain and stop every pool, and empty the state", run: cmdDestroy},
		"show":            {synopsis: "Show the state or a saved plan", run: cmdShow},
		"state":           {synopsis: "Inspect and edit the state (list, show, rm, pull, push)", run: cmdState},
		"force-unlock":    {synopsis: "Release a stuck state lock", run: cmdForceUnlock},
		"status":          {synopsis: "Show every replica's live status", run: cmdStatus},
		"logs":            {synopsis: "Print a replica's engine log", run: cmdLogs, interruptEnds: true},
		"drain":           {synopsis: "Drain a pool or replica, then stop it", run: cmdDrain},
		"import":          {synopsis: "Put a running engine under llorch as a replica, without a restart", run: cmdImport},
		"providers":       {synopsis: "List the providers, their versions and schemas", run: cmdProviders},
		"version":         {synopsis: "Show the llorch version", run: cmdVersion},
		"help":            {synopsis: "Show the commands, or one command's usage", run: cmdHelp},
		"supervise":       {hidden: true, run: cmdSupervise},
		"internal-plugin": {hidden: true, run: cmdInternalPlugin},
		"agent":           {hidden: true, run: cmdAgent},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("llorch", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	chdir := global.String("chdir", "", "switch to DIR before doing anything else")
	showVersion := global.Bool("version", false, "show the version")
	help := global.Bool("help", false, "show help")
	global.BoolVar(help, "h", false, "show help")
	if err := global.Parse(args); err != nil {
		fmt.Fprintf(stderr, "Error: Invalid global option\n\n%s Options of a command go after its name, like \"llorch plan -out=FILE\".\n\n", sentence(err))
		usage(stderr)
		return 1
	}
	rest := global.Args()
	if *showVersion {
		rest = []string{"version"}
	}
	if *help || len(rest) == 0 {
		usage(stdout)
		if *help {
			return 0
		}
		return 1
	}
	name := rest[0]
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "Error: llorch has no command named %q.%s\n\nRun \"llorch -help\" to list the commands.\n",
			name, suggestCommand(name))
		return 1
	}

	m := newMeta(stdin, stdout, stderr)
	if *chdir != "" {
		if err := os.Chdir(*chdir); err != nil {
			m.errorf("Invalid -chdir option", "llorch cannot switch to the directory %s: %s. Give -chdir a directory that exists.",
				*chdir, chdirReason(err))
			return 1
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "Error: cannot determine the working directory: %s\n", err)
		return 1
	}
	m.dir = wd

	// The first Ctrl-C cancels m.ctx: commands stop starting new work and
	// finish what is in flight. A second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	if name != "supervise" && name != "internal-plugin" && name != "agent" {
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		go func() {
			select {
			case <-sigs:
			case <-ctx.Done():
				return
			}
			if !cmd.interruptEnds {
				fmt.Fprintln(stderr, "\nInterrupt received.\nPlease wait for llorch to exit or data loss may occur.\nGracefully shutting down...")
				m.interrupted.Store(true)
			}
			cancel()
			select {
			case <-sigs:
				fmt.Fprintln(stderr, "Two interrupts received. Exiting immediately.")
				os.Exit(1)
			case <-m.done:
			}
		}()
	}
	m.ctx = ctx
	var floor []byte
	if parsesConfig[name] {
		floor = heapFloor()
	}
	code := 0
	if !helpForSubcommands(m, name, rest[1:]) {
		code = cmd.run(m, rest[1:])
	}
	runtime.KeepAlive(floor)
	if m.helped {
		code = 0 // -help is a request, not an error
	}
	if m.interrupted.Load() && code == 0 {
		code = 1 // an interrupted command did not do all it was asked
	}
	close(m.done)
	m.close()
	// Last resort: any plugin process still managed by go-plugin ends
	// with llorch (the resolver already closed the ones it started).
	goplugin.CleanupClients()
	return code
}

// heapFloor returns a buffer to keep alive while a command runs, so that
// the garbage collector leaves the first tens of MB of garbage alone. A
// plan of a thousand pools allocates about 35 MB in 100 ms, most of it the
// HCL parser's short-lived tokens and nodes; from the runtime's 4 MB start
// that is half a dozen collections and much of a core's time spent on
// them. With the buffer counted as live heap a collection comes at about
// twice (live + floor): the first one late, later ones in proportion to
// the real heap, as GOGC intends, so large configurations are not
// penalised as they would be by GOGC=off with a memory limit. The buffer
// holds no pointers and is never written, so it costs address space, not
// memory. 40 MiB lets a thousand-pool plan finish without a collection
// while marking: 24 MiB -> 40 MiB took its CPU from 139 to 124 ms and
// peak RSS from 51 to 57 MiB (interleaved runs of .ci/bench-process.sh's
// setup).
func heapFloor() []byte { return make([]byte, 40<<20) }

// parsesConfig lists the commands that evaluate the whole configuration,
// which heapFloor is for. The others (status, logs -f, drain, supervise,
// the plugin server) allocate little, and some run for hours: a floor
// would only let their garbage grow.
var parsesConfig = map[string]bool{
	"plan": true, "apply": true, "destroy": true, "validate": true, "show": true, "init": true,
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: llorch [-chdir=DIR] <command> [options]\n\n")
	fmt.Fprintf(w, "llorch keeps pools of local LLM inference engines matching their HCL description.\n\n")
	fmt.Fprintf(w, "Commands:\n")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].synopsis)
	}
	fmt.Fprintf(w, "\nGlobal options:\n  -chdir=DIR     Switch to DIR before running the command.\n  -help          Show this help.\n  -version       Show the version (same as \"version\").\n")
}

func suggestCommand(name string) string {
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names) // map order would make ties random
	if best := didyoumean.NameSuggestion(name, names); best != "" {
		return fmt.Sprintf(" Did you mean %q?", best)
	}
	return ""
}

// chdirReason is why os.Chdir failed, without the operation and path the
// message already gives.
func chdirReason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// flagSet builds a FlagSet whose errors come back to the caller, with a
// usage line naming the command.
func flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// multiFlag collects a repeatable flag (-target, -replace, -var).
type multiFlag []string

func (f *multiFlag) String() string     { return strings.Join(*f, ",") }
func (f *multiFlag) Set(v string) error { *f = append(*f, v); return nil }
