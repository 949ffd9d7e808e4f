package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// sweepOrphans stops supervisors that run in a run directory the state
// does not know: what an apply killed with -9 after launching them, but
// before saving them, leaves behind. The plan then starts those replicas
// again, so nothing runs twice and nothing runs unmanaged.
func (r *runner) sweepOrphans() error {
	r.mu.Lock()
	dirs, err := unknownRunDirs(r.deps.Fs, filepath.Join(r.opts.Dirs.State, "run"), r.st)
	r.mu.Unlock()
	if err != nil || len(dirs) == 0 {
		return nil // no run directory yet: nothing can be orphaned
	}
	var errs []error
	for _, dir := range dirs {
		addr := filepath.Base(dir) + " (not in the state)"
		if spec, err := supervisor.ReadSpec(r.deps.Fs, dir); err == nil && spec.Addr != "" {
			addr = spec.Addr + " (not in the state)"
		}
		rep := &state.Replica{RunDir: dir}
		if st, err := supervisor.ReadStatus(r.deps.Fs, dir); err == nil {
			rep.PID, rep.Status = st.PID, string(st.State)
		}
		r.hooks.pre(addr, StepStop)
		select {
		case <-r.stop:
			return nil // interrupted: the next apply sweeps
		default:
		}
		end, err := stopGeneration(r.work, r.stop, r.deps.Launcher, r.deps.Fs, rep, false, 0, stopTimingOf(nil))
		if err == nil {
			err = removeRunDir(r.deps.Fs, rep)
		}
		r.hooks.post(addr, StepStop, Result{PID: end.pid}, err)
		if err != nil {
			errs = append(errs, &Error{Addr: addr, Err: err})
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// unknownRunDirs lists the run directories under root that no replica of
// st names.
func unknownRunDirs(fs afero.Fs, root string, st *state.State) ([]string, error) {
	names, err := readDirNames(fs, root)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	known := map[string]bool{}
	for _, p := range st.Pools {
		for _, rep := range p.Replicas {
			if rep.RunDir != "" {
				known[filepath.Clean(rep.RunDir)] = true
			}
			if rep.HasSuccessor() { // adoptSuccessors settles it
				known[filepath.Clean(rep.SuccessorRunDir)] = true
			}
		}
	}
	var out []string
	for _, name := range names {
		if dir := filepath.Join(root, name); !known[dir] {
			out = append(out, dir)
		}
	}
	return out, nil
}

// Unknown finds the supervisors running in run directories under RunRoot
// that no replica of prior names (plan.UnknownFinder). A run directory
// whose supervisor has ended is left out: nothing runs there, and the
// next apply removes it.
func (rf *Refresher) Unknown(ctx context.Context, prior *state.State) ([]plan.Unknown, error) {
	if rf.RunRoot == "" {
		return nil, nil
	}
	dirs, err := unknownRunDirs(rf.Fs, rf.RunRoot, prior)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rf.RunRoot, err)
	}
	var out []plan.Unknown
	for _, dir := range dirs {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		st, ok := supervisor.RunningIn(rf.Fs, dir, rf.controlSockets())
		if !ok {
			continue
		}
		u := plan.Unknown{RunDir: dir, Addr: st.Addr, SupervisorPID: st.SupervisorPID, PID: st.PID, Status: string(st.State), Port: st.Port}
		if u.Addr == "" {
			if spec, err := supervisor.ReadSpec(rf.Fs, dir); err == nil {
				u.Addr = spec.Addr
			}
		}
		out = append(out, u)
	}
	return out, nil
}

func readDirNames(fs afero.Fs, dir string) ([]string, error) {
	f, err := fs.Open(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// ForeignPathError is a state that names a supervisor running outside
// the state directory it was read from: it was copied from another
// project directory, whose processes it still names.
type ForeignPathError struct {
	Addr, RunDir, Root string
}

func (e *ForeignPathError) Error() string {
	return fmt.Sprintf("%s runs in %s, outside this project's run directory %s", e.Addr, e.RunDir, e.Root)
}

// CheckPaths makes sure no replica of st names a supervisor that runs
// outside <state_dir>/run, so that a state copied from another project
// directory never acts on that directory's processes. A recorded run
// directory elsewhere where nothing runs (the project was moved, or the
// state is shared and the path is another machine's) is no danger.
func CheckPaths(fs afero.Fs, st *state.State, dirs Dirs) error {
	if _, osFs := fs.(*afero.OsFs); !osFs {
		return nil // only real run directories have processes behind them
	}
	root := filepath.Clean(filepath.Join(dirs.State, "run"))
	for _, poolAddr := range st.Addrs() {
		for _, rep := range st.Pools[poolAddr].Replicas {
			for _, dir := range []string{rep.RunDir, rep.SuccessorRunDir} {
				if dir == "" || filepath.Dir(filepath.Clean(dir)) == root {
					continue
				}
				if _, running := supervisor.Running(fs, dir); running {
					return &ForeignPathError{Addr: plan.ReplicaAddr(poolAddr, rep.ID), RunDir: dir, Root: root}
				}
			}
		}
	}
	return nil
}
