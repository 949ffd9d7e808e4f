package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/examples/provider-vllm/vllm"
	"github.com/llorch/llorch/internal/fakeengine"
	"github.com/llorch/llorch/internal/fakevllm"
	"github.com/llorch/llorch/internal/freeport"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/testgguf"
	"github.com/llorch/llorch/internal/textdiff"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers/sdk"
	"github.com/llorch/llorch/state"
)

var update = flag.Bool("update", false, "rewrite the golden sections of testscript files")

// TestMain turns this test binary into llorch, the fake llama-server and
// the example vLLM plugin, so scripts run the real programs with no build
// step.
func TestMain(m *testing.M) {
	// Race-built children sleep 1s at exit unless told not to.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	testscript.Main(m, map[string]func(){
		"llorch":               main,
		"fake-llama-server":    fakeengine.Main,
		"llama-server":         fakeengine.Main, // examples/quickstart names the real binary
		"llorch-provider-vllm": func() { sdk.Serve(vllm.New()) },
		"vllm":                 fakevllm.Main, // what the vLLM plugin runs
		"llorch-provider-flaky": func() {
			sdk.Serve(newFlakyProvider())
		},
	})
}

func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup:               setupEnv,
		Cmds:                scriptCmds,
	})
}

// repoRoot is the repository root, two levels above this package. It is
// fixed at start: commands run in process may change directory (-chdir).
func repoRoot() string { return root }

var root = func() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}()

func setupEnv(e *testscript.Env) error {
	home := filepath.Join(e.WorkDir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	e.Setenv("HOME", home)
	e.Setenv("XDG_CACHE_HOME", filepath.Join(e.WorkDir, "cache"))
	e.Setenv("REPO", repoRoot())
	e.Setenv("GORACE", "atexit_sleep_ms=0")
	e.Setenv("NO_COLOR", "1")
	// No supervisor or engine outlives its script: stop every one recorded
	// under $WORK, even when the script failed before `llorch destroy`.
	e.Defer(func() { stopEverything(e.WorkDir) })
	return nil
}

// stopEverything kills every supervisor (its engine follows through
// Pdeathsig) and engine found in run directories under root.
func stopEverything(root string) {
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "status.json" {
			return nil
		}
		st, err := supervisor.ReadStatus(afero.NewOsFs(), filepath.Dir(path))
		if err != nil {
			return nil
		}
		if st.SupervisorPID > 0 && supervisor.Alive(st.SupervisorPID) {
			_ = syscall.Kill(st.SupervisorPID, syscall.SIGKILL)
		}
		if st.PID > 0 && supervisor.Alive(st.PID) {
			_ = syscall.Kill(-st.PID, syscall.SIGKILL)
		}
		return nil
	})
}

var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"copyrepo":    cmdCopyRepo,
	"statefield":  cmdStateField,
	"livefield":   cmdLiveField,
	"waitreplica": cmdWaitReplica,
	"httpget":     cmdHTTPGet,
	"holdport":    cmdHoldPort,
	"byhand":      cmdByHand,
	"freeport":    cmdFreePort,
	"signal":      cmdSignal,
	"waitdead":    cmdWaitDead,
	"waitfile":    cmdWaitFile,
	"waitjson":    cmdWaitJSON,
	"reap":        cmdReap,
	"alive":       cmdAlive,
	"checkruns":   cmdCheckRuns,
	"cmptimes":    cmdCmpTimes,
	"headergguf":  cmdHeaderGGUF,
}

// headergguf 7b|13b|70b FILE: write a header-only GGUF with the shape of
// Llama 2 7B, 13B or 70B (F16), as long as the real file but sparse.
func cmdHeaderGGUF(ts *testscript.TestScript, neg bool, args []string) {
	shapes := map[string]testgguf.Model{"7b": testgguf.Llama7B(), "13b": testgguf.Llama13B(), "70b": testgguf.Llama70B()}
	m, ok := shapes[args[0]]
	if neg || len(args) != 2 || !ok {
		ts.Fatalf("usage: headergguf 7b|13b|70b FILE")
	}
	ts.Check(m.WriteHeaderOnly(ts.MkAbs(args[1])))
}

// measured is a duration the plan measured (a replica's last start, a
// downtime estimate): it differs from run to run.
var measured = regexp.MustCompile(`(last start |≈ )(?:[0-9.]+(?:ns|µs|ms|s|m|h))+`)

// cmptimes [-env] stdout|stderr FILE: cmp (cmpenv with -env), with
// measured durations written as DUR in FILE ("last start DUR", "≈ DUR").
func cmdCmpTimes(ts *testscript.TestScript, neg bool, args []string) {
	env := len(args) > 0 && args[0] == "-env"
	if env {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cmptimes [-env] stdout|stderr FILE")
	}
	var got string
	switch args[0] {
	case "stdout":
		got = ts.ReadFile("stdout")
	case "stderr":
		got = ts.ReadFile("stderr")
	default:
		ts.Fatalf("cmptimes compares stdout or stderr, not %s", args[0])
	}
	got = measured.ReplaceAllString(got, "${1}DUR")
	want := ts.ReadFile(args[1])
	if env {
		want = os.Expand(want, ts.Getenv)
	}
	if got != want {
		ts.Fatalf("%s and %s differ (durations as DUR):\n%s", args[0], args[1], textdiff.Unified(args[1], args[0], []byte(want), []byte(got)))
	}
}

// copyrepo SRC DST: copy a file or directory of the repository (relative to
// its root) into the script's work directory.
func cmdCopyRepo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: copyrepo SRC DST")
	}
	src := filepath.Join(repoRoot(), args[0])
	dst := ts.MkAbs(args[1])
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == ".llorch" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	ts.Check(err)
}

// readState reads .llorch/state.json in the script's current directory.
func readState(ts *testscript.TestScript) *state.State {
	data, err := os.ReadFile(ts.MkAbs(filepath.Join(".llorch", "state.json")))
	ts.Check(err)
	st, err := state.Decode(data, "state.json", "")
	ts.Check(err)
	return st
}

func replicaOf(ts *testscript.TestScript, st *state.State, addr string) *state.Replica {
	poolAddr, id := plan.SplitReplicaAddr(addr)
	if id == "" {
		ts.Fatalf("%s is not a replica address", addr)
	}
	p := st.Pools[poolAddr]
	if p == nil || p.Replica(id) == nil {
		ts.Fatalf("%s is not in the state", addr)
	}
	return p.Replica(id)
}

// statefield VAR ADDR FIELD: set $VAR to a replica's field from the state
// (pid, supervisor_pid, port, status, restarts, run_dir, handoff, last_error).
func cmdStateField(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: statefield VAR pool.x/rN FIELD")
	}
	setField(ts, args[0], replicaOf(ts, readState(ts), args[1]), args[2])
}

// livefield VAR ADDR FIELD: set $VAR to a field of the replica's live
// status, asked from its supervisor (pid, supervisor_pid, port, state,
// restarts, last_error).
func cmdLiveField(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: livefield VAR pool.x/rN FIELD")
	}
	r := replicaOf(ts, readState(ts), args[1])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := supervisor.Dial(ctx, r.RunDir)
	ts.Check(err)
	defer c.Close()
	st, err := c.Status(ctx)
	ts.Check(err)
	setField(ts, args[0], st, args[2])
}

// setField sets $name to the JSON field of v, numbers without decimals.
func setField(ts *testscript.TestScript, name string, v any, field string) {
	raw, _ := json.Marshal(v)
	var fields map[string]any
	_ = json.Unmarshal(raw, &fields)
	f, ok := fields[field]
	if !ok {
		ts.Fatalf("no field %q", field)
	}
	s := fmt.Sprint(f)
	if n, isNum := f.(float64); isNum {
		s = strconv.FormatInt(int64(n), 10)
	}
	ts.Setenv(name, s)
}

// waitreplica ADDR STATE [OLDPID]: wait (event-driven, through the
// supervisor's watch stream) until the replica's supervisor reports STATE,
// with an engine other than OLDPID when given (after a crash the first
// status seen may still be the old one).
func cmdWaitReplica(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: waitreplica pool.x/rN STATE [OLDPID]")
	}
	oldPID := -1
	if len(args) == 3 {
		var err error
		oldPID, err = strconv.Atoi(args[2])
		ts.Check(err)
	}
	r := replicaOf(ts, readState(ts), args[0])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := supervisor.Dial(ctx, r.RunDir)
	ts.Check(err)
	defer c.Close()
	var last supervisor.Status
	err = c.Watch(ctx, func(s supervisor.Status) bool {
		last = s
		return string(s.State) != args[1] || s.PID == oldPID // true: keep watching
	})
	if err != nil {
		ts.Fatalf("waiting for %s to be %s (last seen %s: %s): %v", args[0], args[1], last.State, last.LastError, err)
	}
}

// httpget URL [STATUS]: GET URL, put the body on stdout, and check the
// status code (default 200).
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: httpget URL [STATUS]")
	}
	want := 200
	if len(args) == 2 {
		want, _ = strconv.Atoi(args[1])
	}
	resp, err := http.Get(args[0])
	if err != nil {
		if neg {
			return
		}
		ts.Fatalf("GET %s: %v", args[0], err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_, _ = ts.Stdout().Write(body)
	if (resp.StatusCode == want) == neg {
		ts.Fatalf("GET %s: status %d (want %s%d)", args[0], resp.StatusCode, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// byhand VAR PROGRAM ARGS...: start PROGRAM (the fake engine) as an
// operator would by hand, not under llorch, with its output in $WORK/VAR.log;
// wait until it has bound its port (FAKE_PID_FILE) and set $VAR to its pid.
// It is killed when the script ends, pass or fail.
func cmdByHand(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: byhand VAR PROGRAM ARGS...")
	}
	path := args[1]
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		if p := filepath.Join(dir, args[1]); fileExists(p) {
			path = p
			break
		}
	}
	pidFile := ts.MkAbs(args[0] + ".pid")
	logf, err := os.Create(ts.MkAbs(args[0] + ".log"))
	ts.Check(err)
	cmd := exec.Command(path, args[2:]...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = append(os.Environ(), "PATH="+ts.Getenv("PATH"), "FAKE_PID_FILE="+pidFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	ts.Check(cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	ts.Defer(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	pollUntil(ts, 30*time.Second, func() bool { return fileExists(pidFile) }, func() string {
		b, _ := os.ReadFile(logf.Name())
		return args[1] + " did not bind its port; its log:\n" + string(b)
	})
	ts.Setenv(args[0], strconv.Itoa(cmd.Process.Pid))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// holdport VAR: listen on a free 127.0.0.1 port for the rest of the script
// (another program holding the port) and set $VAR to it.
func cmdHoldPort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdport VAR")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Defer(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ts.Setenv(args[0], strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
}

// freeport VAR [N]: set $VAR to a port such that it and the N-1 ports
// after it (a pool's replicas listen on port+i) are free now and were not
// handed to another script of this test process.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: freeport VAR [N]")
	}
	n := 1
	if len(args) == 2 {
		var err error
		if n, err = strconv.Atoi(args[1]); err != nil || n < 1 {
			ts.Fatalf("freeport: N must be a positive number, not %q", args[1])
		}
	}
	port, err := freePorts(n)
	ts.Check(err)
	ts.Setenv(args[0], strconv.Itoa(port))
}

var (
	portsMu     sync.Mutex
	portsHanded = map[int]bool{}
)

// freePorts finds n consecutive free loopback ports that no script of this
// process was given before. They are below the kernel's ephemeral range
// when it can: an engine restarted or moved back onto its configured port
// must find it free, and a port in the ephemeral range may meanwhile be the
// local end of any outgoing connection on the machine.
func freePorts(n int) (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for try := 0; try < 100; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(freeport.Candidate(n)))
		if err != nil {
			continue
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := base+n-1 <= 65535
		for p := base; ok && p < base+n; p++ {
			if portsHanded[p] {
				ok = false
				break
			}
			if p > base {
				pl, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
				if err != nil {
					ok = false
					break
				}
				pl.Close()
			}
		}
		if ok {
			for p := base; p < base+n; p++ {
				portsHanded[p] = true
			}
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports found", n)
}

// signal SIG PID: send SIGKILL, SIGTERM, SIGINT, SIGSTOP or SIGCONT to a process.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: signal KILL|TERM|INT|STOP|CONT PID")
	}
	sig := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT}[args[0]]
	if sig == 0 {
		ts.Fatalf("unknown signal %q", args[0])
	}
	pid, err := strconv.Atoi(args[1])
	ts.Check(err)
	ts.Check(syscall.Kill(pid, sig))
}

// waitdead PID: wait until the process is gone (pidfd-free fallback: it
// is not our child, so poll its /proc entry with a bounded backoff).
func cmdWaitDead(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitdead PID")
	}
	pid, err := strconv.Atoi(args[0])
	ts.Check(err)
	pollUntil(ts, 30*time.Second, func() bool { return !supervisor.Alive(pid) }, func() string {
		return fmt.Sprintf("process %d still alive", pid)
	})
}

// pollUntil checks done with a backoff from 1 ms to 50 ms until it
// reports true, and fails the script with what's message after timeout.
// The processes scripts wait for are not their children and write files
// without telling anyone, so there is no event to wait on.
func pollUntil(ts *testscript.TestScript, timeout time.Duration, done func() bool, what func() string) {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !done(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			ts.Fatalf("%s after %s", what(), timeout)
		}
		time.Sleep(delay)
	}
}

// alive PID: succeed when the process runs (use "! alive PID" for dead).
func cmdAlive(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: [!] alive PID")
	}
	pid, err := strconv.Atoi(args[0])
	ts.Check(err)
	if alive := supervisor.Alive(pid); alive == neg {
		ts.Fatalf("process %d: alive = %v, want %v", pid, alive, !neg)
	}
}

// waitfile GLOB: wait until a file matching GLOB exists (for background
// commands).
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile GLOB")
	}
	pattern := ts.MkAbs(args[0])
	pollUntil(ts, 60*time.Second, func() bool {
		m, _ := filepath.Glob(pattern)
		return len(m) > 0
	}, func() string { return args[0] + " did not appear" })
}

// waitjson FILE KEY REGEXP: wait until FILE is a JSON object whose
// top-level KEY, printed as JSON, matches REGEXP (a string without its
// quotes).
func cmdWaitJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitjson FILE KEY REGEXP")
	}
	re, err := regexp.Compile(args[2])
	ts.Check(err)
	path := ts.MkAbs(args[0])
	last := ""
	pollUntil(ts, 60*time.Second, func() bool {
		var doc map[string]any
		b, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(b, &doc) != nil {
			return false
		}
		if s, ok := doc[args[1]].(string); ok {
			last = s
		} else {
			b, _ := json.Marshal(doc[args[1]])
			last = string(b)
		}
		return re.MatchString(last)
	}, func() string { return fmt.Sprintf("%s: %s is %q, not matching %s,", args[0], args[1], last, args[2]) })
}

// reap NAME=VALUE: kill -9 every process whose environment holds
// NAME=VALUE, as a CI runner does with its job's RUNNER_TRACKING_ID when
// the job ends; prints how many it killed.
func cmdReap(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 || !strings.Contains(args[0], "=") {
		ts.Fatalf("usage: reap NAME=VALUE")
	}
	entries, err := os.ReadDir("/proc")
	ts.Check(err)
	killed := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(b), "\x00"), args[0]) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	fmt.Fprintf(ts.Stdout(), "reaped %d processes\n", killed)
}

// checkruns: the state and the processes agree. Every live supervisor
// under .llorch/run belongs to a replica the state records, every engine
// that runs has a live supervisor, and every replica the state records as
// running has both. Nothing is orphaned, nothing runs twice.
func cmdCheckRuns(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: checkruns")
	}
	recorded := map[string]string{} // run dir → replica address
	running := map[string]bool{}
	if _, err := os.Stat(ts.MkAbs(filepath.Join(".llorch", "state.json"))); err == nil {
		st := readState(ts)
		for addr, p := range st.Pools {
			for _, r := range p.Replicas {
				if r.RunDir == "" {
					continue
				}
				recorded[filepath.Clean(r.RunDir)] = addr + "/" + r.ID
				running[filepath.Clean(r.RunDir)] = r.Status == state.StatusReady
			}
		}
	}
	root := ts.MkAbs(filepath.Join(".llorch", "run"))
	entries, _ := os.ReadDir(root)
	seen := map[string]bool{}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		st, err := supervisor.ReadStatus(afero.NewOsFs(), dir)
		if err != nil {
			continue
		}
		supAlive := st.SupervisorPID > 0 && supervisor.Alive(st.SupervisorPID)
		engAlive := st.PID > 0 && supervisor.Alive(st.PID)
		addr, known := recorded[dir]
		switch {
		case supAlive && !known:
			ts.Fatalf("orphan: supervisor %d in %s is not in the state", st.SupervisorPID, dir)
		case engAlive && !supAlive:
			ts.Fatalf("orphan: engine %d in %s runs without its supervisor", st.PID, dir)
		case known && running[dir] && !(supAlive && engAlive):
			ts.Fatalf("%s is recorded ready but supervisor alive=%v, engine alive=%v", addr, supAlive, engAlive)
		}
		seen[dir] = true
	}
	for dir, addr := range recorded {
		if running[dir] && !seen[dir] {
			ts.Fatalf("%s is recorded ready but its run directory %s is gone", addr, dir)
		}
	}
}
