package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/atomicfile"
)

// notifyFDEnv tells `llorch supervise` which inherited descriptor is the
// launcher's status pipe.
const notifyFDEnv = "LLORCH_SUPERVISOR_NOTIFY_FD"

// launchStopMargin is how long, beyond the engine's stop grace, a launcher
// waits for a supervisor it told to stop before killing it (its engine then
// dies by Pdeathsig).
const launchStopMargin = 5 * time.Second

// ExecLauncher starts `Exe Args... RUNDIR` as a detached supervisor.
type ExecLauncher struct {
	Exe  string   // the llorch binary (os.Executable())
	Args []string // e.g. {"supervise"}
	Fs   afero.Fs // nil: the OS filesystem
	Env  []string // the supervisor's environment; nil: SupervisorEnviron of this process's
}

var _ Launcher = (*ExecLauncher)(nil)

func (l *ExecLauncher) fs() afero.Fs {
	if l.Fs == nil {
		return afero.NewOsFs()
	}
	return l.Fs
}

// Launch writes spec to spec.RunDir/spec.json (0600), starts the
// supervisor in its own session (so it outlives this process and a Ctrl-C
// at the terminal), and waits on the health gate through a status pipe:
// it returns when the first start is ready, or with an error carrying the
// last_error and the engine's log lines when it is not, after stopping the
// supervisor so nothing is left running. Cancelling ctx stops the
// supervisor and its engine and returns ctx's error.
func (l *ExecLauncher) Launch(ctx context.Context, spec Spec) (Client, Status, error) {
	fs := l.fs()
	spec, err := absSpec(spec)
	if err != nil {
		return nil, Status{}, err
	}
	if err := spec.WithDefaults().Validate(); err != nil {
		return nil, Status{}, fmt.Errorf("launching supervisor for %s: %w", spec.Addr, err)
	}
	if err := fs.MkdirAll(spec.RunDir, 0o700); err != nil {
		return nil, Status{}, fmt.Errorf("creating run directory for %s: %w", spec.Addr, err)
	}
	if err := fs.Chmod(spec.RunDir, 0o700); err != nil {
		return nil, Status{}, fmt.Errorf("restricting run directory for %s: %w", spec.Addr, err)
	}
	if pid, ok := runningSupervisor(fs, spec.RunDir); ok {
		return nil, Status{}, fmt.Errorf("a supervisor is already running in %s (pid %d); stop it before launching another", spec.RunDir, pid)
	}
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return nil, Status{}, fmt.Errorf("encoding supervisor spec for %s: %w", spec.Addr, err)
	}
	if err := atomicfile.Write(fs, filepath.Join(spec.RunDir, SpecFile), append(b, '\n'), 0o600); err != nil {
		return nil, Status{}, fmt.Errorf("writing supervisor spec for %s: %w", spec.Addr, err)
	}

	logPath := filepath.Join(spec.RunDir, SupervisorLogFile)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, Status{}, fmt.Errorf("opening supervisor log for %s: %w", spec.Addr, err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, Status{}, fmt.Errorf("creating status pipe: %w", err)
	}
	defer pr.Close()
	env := l.Env
	if env == nil {
		env = SupervisorEnviron(os.Environ())
	}
	cmd := &exec.Cmd{
		Path: l.Exe,
		// An explicit argv[0]: the binary may be a copy under another name
		// (testscript), and llorch dispatches on its arguments.
		Args:        append(append([]string{filepath.Base(l.Exe)}, l.Args...), spec.RunDir),
		Env:         append(withoutEnv(env, notifyFDEnv), notifyFDEnv+"=3"),
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{pw},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	_ = pw.Close() // the supervisor holds the only write end now
	if err != nil {
		return nil, Status{}, fmt.Errorf("starting supervisor for %s: %w", spec.Addr, err)
	}
	// Reap the supervisor when it exits, so it never lingers as a zombie
	// of this process; the goroutine ends with it.
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	lines := make(chan wireResponse)
	go func() {
		// Ends at EOF: the supervisor closes the pipe once the first start
		// is decided, or exits.
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r wireResponse
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				lines <- r
			}
		}
	}()

	var last *Status
	var fatal string
	for {
		select {
		case <-ctx.Done():
			l.abort(cmd, exited, spec)
			for range lines { // the reader ends at the pipe's EOF
			}
			return nil, Status{}, fmt.Errorf("launching %s: %w", spec.Addr, ctx.Err())
		case r, ok := <-lines:
			if ok {
				if r.Status != nil {
					last = r.Status
				}
				if r.Error != "" {
					fatal = r.Error
				}
				continue
			}
			if last != nil && last.State == Ready {
				c, err := newSocketClient(spec.RunDir)
				if err != nil {
					l.abort(cmd, exited, spec)
					return nil, Status{}, err
				}
				return c, *last, nil
			}
			return nil, Status{}, l.failed(cmd, exited, spec, last, fatal)
		}
	}
}

// failed stops a supervisor whose first start did not become ready and
// explains why.
func (l *ExecLauncher) failed(cmd *exec.Cmd, exited <-chan struct{}, spec Spec, last *Status, fatal string) error {
	l.abort(cmd, exited, spec)
	switch {
	case last != nil && last.LastError != "":
		return fmt.Errorf("%s did not become ready: %s", spec.Addr, last.LastError)
	case fatal != "":
		return fmt.Errorf("supervisor for %s failed: %s", spec.Addr, fatal)
	case last != nil:
		return fmt.Errorf("%s did not become ready (state %s)", spec.Addr, last.State)
	}
	tail := lastLines(filepath.Join(spec.RunDir, SupervisorLogFile), tailLines)
	return fmt.Errorf("supervisor for %s exited before reporting a status; %s ends with:\n%s", spec.Addr, filepath.Join(spec.RunDir, SupervisorLogFile), tail)
}

// abort stops the supervisor gracefully (SIGTERM: it stops its engine with
// the stop sequence and exits), and kills it if it takes longer than the
// engine's grace plus a margin.
func (l *ExecLauncher) abort(cmd *exec.Cmd, exited <-chan struct{}, spec Spec) {
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(spec.WithDefaults().StopGrace + launchStopMargin)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Attach connects to the supervisor running in runDir.
func (l *ExecLauncher) Attach(ctx context.Context, runDir string) (Client, error) {
	c, err := Dial(ctx, runDir)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// absSpec makes the spec's paths absolute: the supervisor and its engine
// must not depend on the directory a later command runs in.
func absSpec(s Spec) (Spec, error) {
	var err error
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || err != nil {
			return p
		}
		var a string
		a, err = filepath.Abs(p)
		return a
	}
	s.RunDir = abs(s.RunDir)
	s.HandoffPath = abs(s.HandoffPath)
	if strings.Contains(s.Binary, "/") {
		s.Binary = abs(s.Binary)
	}
	if err != nil {
		return s, fmt.Errorf("resolving paths of %s: %w", s.Addr, err)
	}
	return s, nil
}

func withoutEnv(env []string, key string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// lastLines returns up to n last lines of a file, for error messages.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, errors.Unwrap(err))
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
