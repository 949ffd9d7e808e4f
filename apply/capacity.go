package apply

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/llorch/llorch/plan"
)

// minTasksPerReplica is the fewest kernel tasks (threads) one started
// replica adds: a supervisor's Go runtime runs at least five threads, its
// engine at least one. The check below refuses only what cannot fit even
// then, so it never refuses an apply that would have worked.
const minTasksPerReplica = 6

// TaskRoom is how many more tasks (processes and threads) the machine
// lets llorch start, and the limit that says so.
type TaskRoom struct {
	Free  int
	Limit string // "kernel.pid_max 32768 (32700 tasks running)"
}

// TaskRoomFunc reports the tightest of the limits on new tasks.
type TaskRoomFunc func() (TaskRoom, error)

// checkCapacity refuses, before anything starts, an apply that would run
// the machine out of tasks halfway (fork/exec: resource temporarily
// unavailable for some replicas, a partial apply).
func checkCapacity(p *plan.Plan, room TaskRoomFunc) error {
	n := launches(p)
	if n == 0 || room == nil {
		return nil
	}
	r, err := room()
	if err != nil {
		return nil // nothing known: let the starts say
	}
	if need := n * minTasksPerReplica; need > r.Free {
		return fmt.Errorf("this apply starts %d replicas, which need at least %d tasks (a supervisor and an engine each), "+
			"but the machine has room for %d more: %s. Nothing was started. Raise that limit, stop other processes, "+
			"or apply fewer pools at a time (-target)", n, need, r.Free, r.Limit)
	}
	return nil
}

// launches counts the replicas p starts.
func launches(p *plan.Plan) int {
	n := 0
	for _, c := range p.Changes {
		if c.After == nil || c.Action == plan.Delete {
			continue
		}
		ids := replicaIDs(c, c.After)
		if c.Action == plan.Update {
			for _, id := range ids {
				if c.Before == nil || c.Before.Replica(id) == nil {
					n++
				}
			}
			continue
		}
		n += len(ids)
	}
	return n
}

// HostTaskRoom reads the limits on new tasks from /proc and the pids
// cgroup: kernel.pid_max and kernel.threads-max against the tasks running,
// and the cgroup's pids.max against its pids.current (supervisors start in
// llorch's cgroup).
func HostTaskRoom() (TaskRoom, error) {
	running, err := runningTasks()
	if err != nil {
		return TaskRoom{}, err
	}
	best := TaskRoom{Free: -1}
	consider := func(free int, limit string) {
		if best.Free < 0 || free < best.Free {
			best = TaskRoom{Free: max(free, 0), Limit: limit}
		}
	}
	for _, k := range []string{"pid_max", "threads-max"} {
		if v, err := readInt("/proc/sys/kernel/" + k); err == nil {
			consider(v-running, fmt.Sprintf("kernel.%s is %d and %d tasks are running", k, v, running))
		}
	}
	if dir, err := pidsCgroup(); err == nil {
		maxv, merr := readInt(filepath.Join(dir, "pids.max")) // "max" fails: no limit
		cur, cerr := readInt(filepath.Join(dir, "pids.current"))
		if merr == nil && cerr == nil {
			consider(maxv-cur, fmt.Sprintf("the pids cgroup %s allows %d tasks and holds %d", dir, maxv, cur))
		}
	}
	if best.Free < 0 {
		return TaskRoom{}, errors.New("no task limit could be read")
	}
	return best, nil
}

// runningTasks is the number of tasks (threads) on the machine, the
// fourth field of /proc/loadavg ("1/160": running/total).
func runningTasks() (int, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0, fmt.Errorf("/proc/loadavg: %q", b)
	}
	_, total, ok := strings.Cut(f[3], "/")
	if !ok {
		return 0, fmt.Errorf("/proc/loadavg: %q", b)
	}
	return strconv.Atoi(total)
}

// pidsCgroup is this process's pids cgroup directory (v1 or v2).
func pidsCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		parts := strings.SplitN(string(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case slices.Contains(strings.Split(parts[1], ","), "pids"):
			return filepath.Join("/sys/fs/cgroup/pids", parts[2]), nil
		case parts[0] == "0" && parts[1] == "":
			dir := filepath.Join("/sys/fs/cgroup", parts[2])
			if _, err := os.Stat(filepath.Join(dir, "pids.max")); err == nil {
				return dir, nil
			}
		}
	}
	return "", errors.New("no pids cgroup")
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
