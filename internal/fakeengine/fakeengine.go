package fakeengine

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/llorch/llorch/internal/clock"
)

// Main runs the fake server with os.Args[1:] and the process environment,
// then exits the process: with the exit status, or by the signal the real
// server would die of (SIGABRT for a model it cannot load, SIGTERM or SIGINT
// received while loading).
func Main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	o := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr, clock.Real{}, sigs)
	if o.sig != 0 {
		dieBySignal(o.sig)
	}
	os.Exit(o.code)
}

// Run is the testable core of Main. Cancelling ctx delivers one SIGTERM:
// the server exits 0 when idle, dies as if killed by SIGTERM while loading,
// and waits for requests in flight; with FAKE_IGNORE_SIGTERM=1 it has no
// effect at all. Run returns the exit status as a shell shows it, 128+n for
// a death by signal n (134 for SIGABRT, 143 for SIGTERM).
func Run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	sigs := make(chan os.Signal, 1)
	stop := context.AfterFunc(ctx, func() { sigs <- syscall.SIGTERM })
	defer stop()
	return run(context.Background(), args, env, stdout, stderr, clock.Real{}, sigs).status()
}
