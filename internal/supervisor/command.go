package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spf13/afero"
)

// Command is the body of `llorch supervise RUNDIR`: it reads
// RUNDIR/spec.json and runs the supervisor until it is stopped over its
// socket, ctx ends, or the process receives SIGTERM or SIGINT (each of
// which stops the engine gracefully first, then returns nil). Its own log
// goes to stderr.
func Command(ctx context.Context, runDir string) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	notify := notifyPipe()
	err := command(ctx, runDir, notify)
	if err != nil && notify != nil {
		// The launcher is waiting on the pipe: tell it why nothing started.
		line, _ := json.Marshal(wireResponse{Error: err.Error()})
		_, _ = notify.Write(append(line, '\n'))
	}
	if notify != nil {
		_ = notify.Close()
	}
	return err
}

func command(ctx context.Context, runDir string, notify io.WriteCloser) error {
	abs, err := filepath.Abs(runDir)
	if err != nil {
		return fmt.Errorf("resolving run directory %s: %w", runDir, err)
	}
	fs := afero.NewOsFs()
	spec, err := ReadSpec(fs, abs)
	if err != nil {
		return err
	}
	deps := Deps{
		Fs:     fs,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	if notify != nil {
		deps.Notify = notify
	}
	return Run(ctx, spec, deps)
}

// notifyPipe returns the launcher's status pipe, if this process was given
// one, and hides it from the engine: the variable leaves the environment
// and the descriptor is marked close-on-exec (an inherited descriptor is
// not, and an engine holding the pipe would keep the launcher waiting).
func notifyPipe() io.WriteCloser {
	v, ok := os.LookupEnv(notifyFDEnv)
	if !ok {
		return nil
	}
	_ = os.Unsetenv(notifyFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "launcher-status")
}
