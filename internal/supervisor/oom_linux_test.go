package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// memoryCgroup makes a memory cgroup limited to limitMiB for the test, or
// skips with the reason when this machine does not let it.
func memoryCgroup(t *testing.T, limitMiB int) string {
	t.Helper()
	name := fmt.Sprintf("llorch-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	limit := fmt.Sprint(limitMiB << 20)
	tries := []struct{ root, limitFile, swapFile string }{
		{"/sys/fs/cgroup", "memory.max", "memory.swap.max"},                               // v2
		{"/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}, // v1
	}
	for _, c := range tries {
		if _, err := os.Stat(filepath.Join(c.root, "cgroup.procs")); err != nil {
			continue
		}
		dir := filepath.Join(c.root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue
		}
		t.Cleanup(func() { _ = os.Remove(dir) }) // after the engine is gone: rmdir of a cgroup with tasks fails
		if err := os.WriteFile(filepath.Join(dir, c.limitFile), []byte(limit), 0o644); err != nil {
			continue
		}
		// No swap to escape to: the limit must end in an OOM kill.
		_ = os.WriteFile(filepath.Join(dir, c.swapFile), []byte(map[bool]string{true: "0", false: limit}[c.swapFile == "memory.swap.max"]), 0o644)
		return dir
	}
	t.Skip("cannot make a memory cgroup here (needs root and a writable cgroup v1 memory or v2 hierarchy): the kernel OOM kill is not tested")
	return ""
}

// TestKernelOOMKillIsOutOfMemory: an engine the kernel's OOM killer ends
// (here a real kill: the fake joins a cgroup limited to 96 MiB, then
// allocates 512 MiB once ready, as a KV cache outgrows its memory) is
// out_of_memory, a configuration cause, not a crash to restart-loop.
func TestKernelOOMKillIsOutOfMemory(t *testing.T) {
	cg := memoryCgroup(t, 96)
	spec := fakeSpec(t, map[string]string{"FAKE_CGROUP": cg, "FAKE_GROW_MIB": "512"})
	spec.Restart.MaxFailures = 5
	r := startRun(t, spec)
	st, _ := r.waitFor(t, "failed", isState(Failed))
	if st.Cause != string(CauseOutOfMemory) || !strings.HasPrefix(st.CauseLine, "killed by the kernel's OOM killer (SIGKILL, and oom_kill in "+cg) {
		t.Fatalf("cause %q, line %q; want out_of_memory from the cgroup's count", st.Cause, st.CauseLine)
	}
	if !strings.Contains(st.LastError, "engine was killed by signal SIGKILL: out_of_memory (") || !strings.Contains(st.LastError, "circuit breaker open at once") {
		t.Fatalf("last_error %q", st.LastError)
	}
}

// A SIGKILL from someone else is no OOM kill, even on a machine where the
// OOM killer has been busy: the engine's cgroup count did not move.
func TestSIGKILLWithoutAnOOMKillIsACrash(t *testing.T) {
	cg := memoryCgroup(t, 512)
	spec := fakeSpec(t, map[string]string{"FAKE_CGROUP": cg})
	spec.Restart.MaxFailures = 1
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))
	if err := syscall.Kill(ready.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, _ := r.waitFor(t, "an end", func(st Status) bool { return st.Cause != "" })
	if st.Cause != string(CauseCrashed) {
		t.Fatalf("cause %q (%q), want crashed", st.Cause, st.CauseLine)
	}
}
