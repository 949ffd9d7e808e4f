package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
)

// selfSpawner starts an in-process stand-in engine: an HTTP server on the
// spec's port whose /health answers 503 for a load time and then 200,
// reported with this process's pid so that the real HTTPProber's
// socket-ownership check accepts it.
type selfSpawner struct {
	port int
	load func() time.Duration // each start's load time

	healthy atomic.Bool
	readyAt atomic.Int64 // unix nanoseconds when /health last turned 200

	mu    sync.Mutex
	srv   *http.Server
	proc  *fakeProc
	log   io.Writer
	timer *time.Timer
}

func (s *selfSpawner) Start(ctx context.Context, c Cmd) (Process, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.healthy.Store(false)
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.healthy.Load() {
			_, _ = w.Write([]byte(`{"status":"ok"}`))
			return
		}
		w.WriteHeader(503)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	s.proc = &fakeProc{pid: os.Getpid(), done: make(chan ExitStatus, 1)}
	s.log = c.Log
	s.timer = time.AfterFunc(s.load(), s.ready)
	return s.proc, nil
}

// ready ends the load: /health turns 200, and then the stand-in logs what
// llama-server logs once its model is loaded, in that order, as the real
// server does.
func (s *selfSpawner) ready() {
	s.mu.Lock()
	log := s.log
	s.mu.Unlock()
	s.readyAt.Store(time.Now().UnixNano())
	s.healthy.Store(true)
	_, _ = io.WriteString(log, "main: model loaded\n")
}

// crash closes the stand-in's port and reports it exited.
func (s *selfSpawner) crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer.Stop()
	_ = s.srv.Close()
	s.proc.exit(ExitStatus{Code: 1})
}

// BenchmarkReadyDetection measures how long the supervisor takes from the
// engine's /health turning 200 to the ready status being seen by a
// watcher, with the real HTTP prober, at the default 100ms readiness
// interval and at 10ms. Each start of the stand-in engine loads for 20ms
// plus a random part of one interval (seeded), so that it turns ready at
// no fixed point between two readiness polls, as a real engine does, and
// then logs "main: model loaded" as llama-server does; each iteration
// waits for ready and crashes the engine for the next start. Only the
// 200 → ready time is reported (ms/ready).
func BenchmarkReadyDetection(b *testing.B) {
	for _, interval := range []time.Duration{100 * time.Millisecond, 10 * time.Millisecond} {
		b.Run("interval="+interval.String(), func(b *testing.B) {
			rnd := rand.New(rand.NewPCG(1, 2)) // only the loop's Start calls load
			sp := &selfSpawner{port: freePort(b), load: func() time.Duration {
				return 20*time.Millisecond + time.Duration(rnd.Int64N(int64(interval)))
			}}
			spec := Spec{
				Addr: "pool.bench/r0", Binary: "engine", Host: "127.0.0.1", Port: sp.port,
				Health:  HealthPolicy{Interval: interval, StartTimeout: time.Hour, LiveInterval: time.Hour},
				Restart: RestartPolicy{Policy: "always"},
				RunDir:  runDir(b),
			}
			r := benchRun(b, spec, Deps{Spawner: sp, Fs: afero.NewMemMapFs()})
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				benchWait(b, r, func(st Status) bool { return st.State == Ready && st.Restarts == i })
				total += time.Since(time.Unix(0, sp.readyAt.Load()))
				sp.crash()
				benchWait(b, r, func(st Status) bool { return st.State == Starting && st.Restarts == i+1 })
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/ready")
		})
	}
}

// BenchmarkCrashToRestart measures the time from an engine's crash (SIGKILL
// from outside) to a new engine process running, with the real spawner, the
// fake llama-server and initial_backoff 0s (ms/restart).
func BenchmarkCrashToRestart(b *testing.B) {
	spec := fakeSpec(b, nil)
	spec.Restart = RestartPolicy{Policy: "always"} // no breaker, no backoff
	r := benchRun(b, spec, Deps{})
	st := benchWait(b, r, func(st Status) bool { return st.State == Ready })
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		crash := time.Now()
		if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		old := st.PID
		st = benchWait(b, r, func(st Status) bool { return st.PID != 0 && st.PID != old })
		total += time.Since(crash)
		st = benchWait(b, r, func(st Status) bool { return st.State == Ready })
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/restart")
}

// BenchmarkCrashToHealthyDefaults measures what one crash of a serving
// engine costs with the default restart policy: from SIGKILL to the next
// engine ready (ms/crash). The first restart after a run that served is
// immediate, so this is the restart itself, not initial_backoff. Each
// iteration has a supervisor of its own, since only a first crash is
// immediate.
func BenchmarkCrashToHealthyDefaults(b *testing.B) {
	d := config.DefaultRestart
	var total time.Duration
	for i := 0; i < b.N; i++ {
		spec := fakeSpec(b, nil)
		spec.Restart = RestartPolicy{
			Policy: d.Policy, InitialBackoff: d.InitialBackoff, MaxBackoff: d.MaxBackoff, Multiplier: d.Multiplier,
			Jitter: d.Jitter, ResetAfter: d.ResetAfter, MaxFailures: d.MaxFailures, Cooldown: d.Cooldown,
		}
		r := benchRun(b, spec, Deps{})
		st := benchWait(b, r, func(st Status) bool { return st.State == Ready })
		crash := time.Now()
		if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		old := st.PID
		benchWait(b, r, func(st Status) bool { return st.State == Ready && st.PID != old })
		total += time.Since(crash)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/crash")
}

// BenchmarkSupervisorRSS launches a detached supervisor with a ready fake
// engine and reports the supervisor's resident memory (VmRSS-kB). The
// supervisor here is this test binary, a little larger than llorch itself.
func BenchmarkSupervisorRSS(b *testing.B) {
	spec := fakeSpec(b, nil)
	exe, err := exec.LookPath("llorch")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, st, err := (&ExecLauncher{Exe: exe, Args: []string{"supervise"}}).Launch(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Stop(context.Background(), 0) }()
	var kb int
	for i := 0; i < b.N; i++ {
		kb = vmRSSkB(b, st.SupervisorPID)
	}
	b.ReportMetric(float64(kb), "VmRSS-kB")
}

// vmRSSkB reads a process's resident set size from /proc/PID/status.
func vmRSSkB(b *testing.B, pid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no VmRSS line")
	return 0
}

// benchRun runs a supervisor in-process for a benchmark.
func benchRun(b *testing.B, spec Spec, deps Deps) *SocketClient {
	b.Helper()
	ln, cleanup, err := listenControl(spec.RunDir)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	deps.Listener = ln
	go func() {
		defer cleanup()
		done <- Run(ctx, spec, deps)
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	c, err := newSocketClient(spec.RunDir)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func benchWait(b *testing.B, c *SocketClient, cond func(Status) bool) Status {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var got Status
	err := c.Watch(ctx, func(st Status) bool {
		if cond(st) {
			got = st
			return false
		}
		return true
	})
	if err != nil {
		b.Fatal(err)
	}
	return got
}

// BenchmarkReadyAfterEngine200 measures, against the fake llama-server
// process behaving as each build (FAKE_BUILD), the time from the engine's
// /health turning 200 (the fake stamps that moment in its log) to the
// supervisor recording it ready, with the real spawner and prober at the
// default 100ms readiness interval. Build 4748 answers a kept-alive request
// only after the client's delayed ACK (~40 ms), so a prober that keeps
// connections alive pays that on every probe after the first. Each
// iteration kills the engine and waits for the restarted one.
func BenchmarkReadyAfterEngine200(b *testing.B) {
	for _, build := range engineBuilds {
		b.Run("build="+build, func(b *testing.B) {
			spec := fakeSpec(b, map[string]string{"FAKE_BUILD": build, "FAKE_READY_STAMP": "1", "FAKE_LOAD_DELAY": "30ms"})
			spec.Health.Interval = 100 * time.Millisecond
			spec.Restart = RestartPolicy{Policy: "always"}
			r := benchRun(b, spec, Deps{})
			var total time.Duration
			st := benchWait(b, r, func(st Status) bool { return st.State == Ready })
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
					b.Fatal(err)
				}
				st = benchWait(b, r, func(st Status) bool { return st.State == Ready && st.Restarts == i+1 })
				total += st.ReadyAt.Sub(lastReadyStamp(b, spec.RunDir))
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/ready")
		})
	}
}

// BenchmarkReadyAfterRealEngine200 is BenchmarkReadyAfterEngine200 for a
// real llama-server, when LLORCH_TEST_LLAMA_SERVER names one (and
// LLORCH_TEST_MODEL a GGUF it loads). A
// real engine stamps nothing, so a poller asks /health on a fresh
// connection every millisecond from the kill on, and its first 200 stands
// for the engine's; the figure is then within about a millisecond.
func BenchmarkReadyAfterRealEngine200(b *testing.B) {
	bin := os.Getenv("LLORCH_TEST_LLAMA_SERVER")
	if bin == "" {
		b.Skip("LLORCH_TEST_LLAMA_SERVER does not name a llama-server binary")
	}
	model := os.Getenv("LLORCH_TEST_MODEL")
	if model == "" {
		b.Skip("LLORCH_TEST_MODEL does not name a GGUF the real llama-server can load (the generated test models carry no real weights)")
	}
	spec := fakeSpec(b, nil)
	spec.Binary = bin
	spec.ModelPath = model
	spec.Args = []string{"-m", model, "--host", "127.0.0.1", "--port", strconv.Itoa(spec.Port), "-c", "256"}
	spec.Health.Interval = 100 * time.Millisecond
	spec.Health.StartTimeout = time.Minute
	spec.Restart = RestartPolicy{Policy: "always"}
	r := benchRun(b, spec, Deps{})
	st := benchWait(b, r, func(st Status) bool { return st.State == Ready })
	url := "http://127.0.0.1:" + strconv.Itoa(spec.Port) + "/health"
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		first := make(chan time.Time, 1)
		go func() { first <- firstOK(url) }()
		st = benchWait(b, r, func(st Status) bool { return st.State == Ready && st.Restarts == i+1 })
		total += st.ReadyAt.Sub(<-first)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/ready")
}

// firstOK polls url every millisecond on fresh connections until it
// answers 200, and returns when (within testTimeout).
func firstOK(url string) time.Time {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Second}
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Now()
			}
		}
		time.Sleep(time.Millisecond)
	}
	return time.Now()
}

// lastReadyStamp is the last "fake: ready at NS" in a run's engine.log.
func lastReadyStamp(b *testing.B, dir string) time.Time {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(dir, EngineLogFile))
	if err != nil {
		b.Fatal(err)
	}
	i := bytes.LastIndex(data, []byte("fake: ready at "))
	if i < 0 {
		b.Fatal("the engine log has no ready stamp")
	}
	line, _, _ := bytes.Cut(data[i+len("fake: ready at "):], []byte("\n"))
	ns, err := strconv.ParseInt(string(line), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Unix(0, ns)
}
