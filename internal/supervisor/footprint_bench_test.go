package supervisor

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildPrograms builds llorch and llorch-supervisor, the two programs that
// can supervise a replica, as `make build` does (static), into a temporary
// directory, and returns them by name.
func buildPrograms(b *testing.B) map[string]string {
	b.Helper()
	dir := b.TempDir()
	out := map[string]string{}
	for _, name := range []string{"llorch", ProgramName} {
		path := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", path, "../../cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("building %s: %v\n%s", name, err, msg)
		}
		out[name] = path
	}
	return out
}

// procStatus reads numeric kB or count fields of /proc/PID/status.
func procStatus(b *testing.B, pid int, keys ...string) map[string]float64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for _, want := range keys {
			if k == want {
				n, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				out[k] = n
			}
		}
	}
	return out
}

// cpuTime is the CPU time all of a process's threads have used, from
// their /proc schedstat (nanoseconds, unlike the 10 ms ticks of stat).
func cpuTime(b *testing.B, pid int) time.Duration {
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no schedstat for pid %d: %v", pid, err)
	}
	var total time.Duration
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just ended
		}
		ns, _ := strconv.ParseInt(strings.Fields(string(raw))[0], 10, 64)
		total += time.Duration(ns)
	}
	return total
}

// BenchmarkSupervisorFootprint launches one replica's supervisor the way
// apply does, once with each program (the whole llorch, and the slim
// llorch-supervisor), around a ready fake engine with the default probe
// intervals, and reports what one supervisor costs the machine: resident
// memory (VmRSS), private memory (RssAnon), threads (each is a task
// against pid_max) and idle CPU (% of one core over 10 s, with the
// default liveness probe every 5 s, and with none).
//
//	go test -run '^$' -bench SupervisorFootprint -benchtime 1x ./internal/supervisor
func BenchmarkSupervisorFootprint(b *testing.B) {
	progs := buildPrograms(b)
	for _, run := range []struct {
		name, prog string
		live       time.Duration
	}{
		{"llorch", "llorch", 5 * time.Second},
		{ProgramName, ProgramName, 5 * time.Second},
		{ProgramName + "/no-probes", ProgramName, time.Hour},
	} {
		name := run.prog
		b.Run(run.name, func(b *testing.B) {
			for range b.N {
				spec := fakeSpec(b, nil)
				spec.Health.LiveInterval = run.live
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				c, st, err := (&ExecLauncher{Exe: progs[name], Args: []string{"supervise"}}).Launch(ctx, spec)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				time.Sleep(2 * time.Second) // settle after the start
				before := cpuTime(b, st.SupervisorPID)
				window := 10 * time.Second
				time.Sleep(window)
				cpu := float64(cpuTime(b, st.SupervisorPID)-before) / float64(window) * 100
				m := procStatus(b, st.SupervisorPID, "VmRSS", "RssAnon", "Threads")
				_ = c.Stop(context.Background(), 0)
				b.ReportMetric(m["VmRSS"], "VmRSS-kB")
				b.ReportMetric(m["RssAnon"], "RssAnon-kB")
				b.ReportMetric(m["Threads"], "threads")
				b.ReportMetric(cpu, "idle-cpu-%")
			}
		})
	}
}

// BenchmarkSupervisorSoak runs the slim supervisor with a liveness probe
// every 10 ms, 500 times the default rate, for LLORCH_SOAK (default 30s),
// and reports the most private memory it held in the first and in the
// second half: 30 s here are as many probes as 4 hours at the default 5 s.
//
//	LLORCH_SOAK=2m go test -run '^$' -bench SupervisorSoak -benchtime 1x ./internal/supervisor
func BenchmarkSupervisorSoak(b *testing.B) {
	soak := 30 * time.Second
	if v := os.Getenv("LLORCH_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("LLORCH_SOAK=%q: %v", v, err)
		}
		soak = d
	}
	progs := buildPrograms(b)
	for range b.N {
		spec := fakeSpec(b, nil)
		spec.Health.LiveInterval = 10 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		c, st, err := (&ExecLauncher{Exe: progs[ProgramName], Args: []string{"supervise"}}).Launch(ctx, spec)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		// Ten looks: growth that goes on is a leak, a level reached early
		// is the heap's working size.
		var samples []float64
		for range 10 {
			time.Sleep(soak / 10)
			samples = append(samples, procStatus(b, st.SupervisorPID, "RssAnon")["RssAnon"])
		}
		_ = c.Stop(context.Background(), 0)
		b.Logf("RssAnon kB every %s: %v", soak/10, samples)
		b.ReportMetric(slices.Max(samples[:5]), "RssAnon-max-first-half-kB")
		b.ReportMetric(slices.Max(samples[5:]), "RssAnon-max-second-half-kB")
		b.ReportMetric(soak.Seconds()/0.01, "probes")
	}
}
