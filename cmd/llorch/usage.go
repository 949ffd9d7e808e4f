package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/internal/views"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/fit"
	"github.com/llorch/llorch/plan/render"
)

// usageText is what `llorch COMMAND -help` prints above the options: the
// positional arguments the command takes and what it does.
type usageText struct {
	args string // after "[options]": "[PLANFILE]", "ADDR", ""
	help string // one paragraph
}

// usages is keyed by the flag set's name ("plan", "state rm").
var usages = map[string]usageText{
	"init":         {"", "Finds the providers the configuration uses (built in, or plugins on the search path) and records their versions and checksums in .llorch.lock.hcl, so that later runs use exactly those. -upgrade accepts plugins whose checksum changed. It first checks the state backend the llorch block names (the local file, or etcd); when that changed, -migrate-state copies the state to the new backend and -reconfigure uses the new one as it is."},
	"validate":     {"", "Checks the configuration files in the working directory: syntax, attribute names and types, references, pool names and addresses, and port conflicts. It reads no state, asks no provider to prepare anything and starts nothing. Required variables need no value: they are unknown, as in Terraform, and what depends on them is checked by plan; values given with -var are checked."},
	"fmt":          {"[DIR or FILE...]", "Rewrites configuration files (*.llorch.hcl, *.llorchvars.hcl) in the canonical style, in the working directory or the directories and files given. -check changes nothing and exits 3 when a file would change; -diff shows the changes."},
	"plan":         {"", "Compares the configuration with the state and the live replicas (asking their supervisors first, unless -refresh=false) and shows what apply would do: the pools and replicas it would create, update in place, replace, restart or destroy. -out=FILE saves the plan for \"llorch apply FILE\"."},
	"apply":        {"[PLANFILE]", "Creates, updates, replaces, restarts and destroys pools and replicas so that they match the configuration. Without PLANFILE it makes a plan, shows it and asks for approval (-auto-approve skips the question); with a plan saved by \"llorch plan -out\" it carries out exactly that plan, and refuses one made for another state or modified since."},
	"destroy":      {"", "Drains and stops every pool the state records (or only the -target ones), removes their handoff files and run directories, and forgets them in the state. It shows the plan and asks for approval first (-auto-approve skips the question)."},
	"show":         {"[PLANFILE]", "Shows the state: every pool and replica recorded, with its spec. With PLANFILE, shows the changes a plan saved by \"llorch plan -out\" would make; -json prints either as JSON."},
	"state":        {"<list|show|rm|pull|push> [options] [ADDRESS...|FILE]", "Inspects and edits the state without touching any engine: list prints every recorded address, show prints one pool or replica, rm forgets pools (their engines keep running), pull prints the whole state document, push replaces it with a file. Run \"llorch state SUBCOMMAND -help\" for each one's options."},
	"state list":   {"", "Prints the address of every pool recorded in the state, one a line, in address order."},
	"state show":   {"ADDRESS", "Prints one pool (pool.chat, pool.embed[\"bge\"]) or replica (pool.chat/r0) as the state records it, as JSON."},
	"state rm":     {"ADDRESS...", "Forgets pools in the state without stopping their engines, so that llorch no longer manages them. -dry-run only says what would be removed."},
	"state pull":   {"", "Prints the whole state document on stdout, as stored."},
	"state push":   {"FILE", "Replaces the stored state with FILE (- for stdin), as after llorch state pull or an errored.state.json: refused when FILE is another registry (lineage) or older than the stored state, unless -force."},
	"force-unlock": {"LOCK_ID", "Removes the lock on the state that a crashed or killed llorch left, given the lock ID its lock error showed. Use it only when no other llorch runs against this state; it asks for confirmation unless -force."},
	"status":       {"", "Asks every recorded replica's supervisor for its live status and prints one line each: state, engine pid, port, uptime, restarts and the last error. -json prints the same as one JSON document."},
	"logs":         {"ADDR", "Prints the end of one replica's engine log, like llorch logs pool.chat/r0; -f keeps following it until Ctrl-C."},
	"drain":        {"ADDR", "Drains a pool or one replica (pool.chat, pool.chat/r0): its handoff file goes so routers stop sending, in-flight requests finish or the deadline passes, then the engine stops. The state keeps the replicas as stopped, and the next apply starts them again."},
	"import":       {"ADDR PID", "Adopts an engine that llorch did not start (by hand, or by systemd) as one replica of a configured pool, like llorch import pool.chat/r0 4242, or llorch import -url http://127.0.0.1:8080 pool.chat/r0. It prepares the pool's engine as apply would, checks that the running one answers ready on its port and serves the pool's model, then supervises it without a restart; when it ends, llorch starts the pool's engine from the configuration. Nothing is recorded or signalled when a check fails."},
	"providers":    {"", "Lists the providers available to this configuration, with their versions, where they come from and the attributes their provider and pool blocks take; -json prints the same as JSON."},
	"version":      {"", "Prints the llorch version and platform; -json prints them as JSON."},
}

// printUsage writes fs's usage: the line with its arguments, what it does,
// and its options.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	u := usages[fs.Name()]
	line := "Usage: llorch " + fs.Name() + " [options]"
	if u.args != "" {
		line += " " + u.args
	}
	fmt.Fprintln(w, line)
	if u.help != "" {
		fmt.Fprintf(w, "\n%s\n", wrap(u.help, 76))
	}
	fmt.Fprint(w, "\nOptions:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// wrap breaks a paragraph into lines of at most width columns.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len([]rune(word)) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len([]rune(word))
	}
	return b.String()
}

// cmdHelp is `llorch help [COMMAND [SUBCOMMAND]]`: the command list, or
// one command's usage.
func cmdHelp(m *meta, args []string) int {
	if len(args) == 0 {
		usage(m.stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok || cmd.hidden {
		m.errorf("No such command", "llorch has no command named %q.%s Run \"llorch help\" to list the commands.", args[0], suggestCommand(args[0]))
		return 1
	}
	if args[0] == "state" && len(args) == 1 {
		printStateUsage(m)
		return 0
	}
	return cmd.run(m, append(args[1:], "-help"))
}

// printStateUsage is `llorch state -help`: state has subcommands, not
// options of its own.
func printStateUsage(m *meta) {
	u := usages["state"]
	fmt.Fprintf(m.stdout, "Usage: llorch state %s\n\n%s\n", u.args, wrap(u.help, 76))
	m.helped = true
}

// helpForSubcommands answers -help given to a command whose first argument
// is a subcommand (llorch state -h), before the command reads it as one.
func helpForSubcommands(m *meta, name string, args []string) bool {
	if name != "state" || len(args) == 0 {
		return false
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printStateUsage(m)
		return true
	}
	return false
}

// jsonDiagnostics prints diags as one JSON document on stdout, as
// validate -json does, for a -json command that fails: a program reading
// its stdout gets JSON whatever happened.
func (m *meta) jsonDiagnostics(diags hcl.Diagnostics) {
	errs := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs++
		}
	}
	enc := json.NewEncoder(m.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(struct {
		FormatVersion string                 `json:"format_version"`
		ErrorCount    int                    `json:"error_count"`
		WarningCount  int                    `json:"warning_count"`
		Diagnostics   []views.JSONDiagnostic `json:"diagnostics"`
		// Fit is the memory fit table when the errors are that the pools
		// do not fit.
		Fit *render.Fit `json:"fit,omitempty"`
	}{"1.0", errs, len(diags) - errs, views.DiagnosticsJSONIn(diags, m.files, m.dir), render.NewFit(fitReport(diags))})
}

// targetingWarning is Terraform's warning for -target: what was planned
// may not be all the configuration asks for.
func targetingWarning(verb string) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagWarning,
		Summary:  "Resource targeting is in effect",
		Detail: fmt.Sprintf("You are %s a plan with the -target option, which means that the result of this plan may not represent all of the changes requested by the current configuration.\n\n"+
			"The -target option is not for routine use, and is provided only for exceptional situations such as recovering from errors or mistakes, or when llorch specifically suggests to use it as part of an error message.", verb),
	}}
}

// fitReport is the memory fit report an error diagnostic carries, nil
// when none does.
func fitReport(diags hcl.Diagnostics) *fit.Report {
	for _, d := range diags {
		if r := plan.FitReport(d); r != nil {
			return r
		}
	}
	return nil
}
