package apply

import (
	"os"
	"path/filepath"
	"sort"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/state"
)

// sweepOrphans stops supervisors that run in a run directory the state
// does not know: what an apply killed with -9 after launching them, but
// before saving them, leaves behind. The plan then starts those replicas
// again, so nothing runs twice and nothing runs unmanaged.
func (r *runner) sweepOrphans() error {
	root := filepath.Join(r.opts.Dirs.State, "run")
	entries, err := readDirNames(r, root)
	if err != nil || len(entries) == 0 {
		return nil // no run directory yet: nothing can be orphaned
	}
	known := map[string]bool{}
	r.mu.Lock()
	for _, p := range r.st.Pools {
		for _, rep := range p.Replicas {
			if rep.RunDir != "" {
				known[filepath.Clean(rep.RunDir)] = true
			}
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, name := range entries {
		dir := filepath.Join(root, name)
		if known[dir] {
			continue
		}
		addr := name + " (not in the state)"
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
		pid, err := stopGeneration(r.work, r.stop, r.deps.Launcher, r.deps.Fs, rep, false, 0, stopTimingOf(nil))
		if err == nil {
			err = removeRunDir(r.deps.Fs, rep)
		}
		r.hooks.post(addr, StepStop, Result{PID: pid}, err)
		if err != nil {
			errs = append(errs, &Error{Addr: addr, Err: err})
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func readDirNames(r *runner, dir string) ([]string, error) {
	f, err := r.deps.Fs.Open(dir)
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
