// Command llorch-supervisor is the per-replica supervisor on its own:
// `llorch-supervisor supervise RUNDIR` does what `llorch supervise RUNDIR`
// does, from a binary that links only the supervisor (a third of llorch's
// size, half its memory per replica, no plugin, state-backend or HCL code
// initialised in every one of hundreds of processes). llorch starts it
// instead of itself when it sits next to the llorch executable and comes
// from the same build; see supervisor.Program.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/llorch/llorch/internal/supervisor"
)

func main() {
	// One replica's bookkeeping needs no parallelism, and every processor
	// the runtime may use can leave a thread behind.
	runtime.GOMAXPROCS(1)
	if len(os.Args) != 3 || os.Args[1] != "supervise" {
		fmt.Fprintln(os.Stderr, "Usage: llorch-supervisor supervise RUNDIR (started by llorch apply; not meant to be run by hand)")
		os.Exit(1)
	}
	if err := supervisor.Command(context.Background(), os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "llorch-supervisor: %s\n", err)
		os.Exit(1)
	}
}
