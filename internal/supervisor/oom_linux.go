package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// oomCounter is where the kernel counts the OOM kills that would have
// ended an engine: its memory cgroup's own count when there is one (cgroup
// v2 memory.events.local, v1 memory.oom_control), else the machine's
// (/proc/vmstat). The cgroup's count is not raised by kills elsewhere, so a
// SIGKILL from someone else is not taken for an OOM kill because another
// process ran out of memory at the same moment.
type oomCounter struct {
	path string // file holding an "oom_kill N" line
}

// oomCounterOf finds the counter for process pid.
func oomCounterOf(pid int) oomCounter {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err == nil {
		for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) != 3 {
				continue
			}
			var candidates []string
			switch {
			case parts[0] == "0" && parts[1] == "":
				candidates = []string{
					filepath.Join("/sys/fs/cgroup", parts[2], "memory.events.local"),
					filepath.Join("/sys/fs/cgroup/unified", parts[2], "memory.events.local"),
				}
			case strings.Contains(","+parts[1]+",", ",memory,"):
				candidates = []string{filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.oom_control")}
			}
			for _, c := range candidates {
				if _, ok := (oomCounter{c}).read(); ok {
					return oomCounter{c}
				}
			}
		}
	}
	return oomCounter{"/proc/vmstat"}
}

// read returns the count; ok is false when it cannot be read.
func (c oomCounter) read() (n uint64, ok bool) {
	if c.path == "" {
		return 0, false
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, found := strings.CutPrefix(line, "oom_kill "); found {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
