package supervisor

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/state/handoff"
)

func TestSlowLoadBecomesReadyOnlyAfterLoading(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_LOAD_DELAY": "300ms"})
	r := startRun(t, spec)
	st, seen := r.waitFor(t, "ready", isState(Ready))
	if got := st.ReadyAt.Sub(st.StartedAt); got < 300*time.Millisecond {
		t.Fatalf("ready %v after start, before the 300ms load finished", got)
	}
	if got := states(seen); got[0] != Starting {
		t.Fatalf("states %v, want starting first", got)
	}
}

func TestCrashedEngineIsRestartedWithANewPid(t *testing.T) {
	spec := fakeSpec(t, counterKnobs(t, 1, map[string]string{"FAKE_CRASH_AFTER": "500ms", "FAKE_EXIT_CODE": "1"}))
	r := startRun(t, spec)
	first, _ := r.waitFor(t, "first ready", isState(Ready))
	second, seen := r.waitFor(t, "ready again after the crash", func(st Status) bool { return st.State == Ready && st.Restarts == 1 })
	if second.PID == first.PID || second.PID == 0 {
		t.Fatalf("pid after restart = %d, first pid %d; want a new process", second.PID, first.PID)
	}
	if Alive(first.PID) {
		t.Fatalf("crashed engine %d still alive", first.PID)
	}
	for _, want := range []string{
		"engine exited with status 1; restarting in 0s (attempt 1); last engine log lines:\n",
		"fake: fatal: crashing as FAKE_CRASH_AFTER=500ms asks, exit status 1",
	} {
		if !strings.Contains(second.LastError, want) {
			t.Fatalf("last_error %q\nwant it to contain %q", second.LastError, want)
		}
	}
	if got := states(seen); !contains(got, Restarting) {
		t.Fatalf("states %v, want a restarting state between the crash and the new start", got)
	}
	h := readHandoffFile(t, spec.HandoffPath)
	if h.PID != second.PID {
		t.Fatalf("handoff pid %d after restart, want the new engine %d", h.PID, second.PID)
	}
}

func TestBackoffStateRecordsTheNextRestart(t *testing.T) {
	spec := fakeSpec(t, counterKnobs(t, 1, map[string]string{"FAKE_CRASH_ON_START": "1"}))
	spec.Restart.InitialBackoff = 200 * time.Millisecond
	spec.Restart.MaxBackoff = time.Second
	spec.Restart.Jitter = 0
	r := startRun(t, spec)
	backoff, _ := r.waitFor(t, "backoff", isState(Backoff))
	if got := backoff.NextRestartAt.Sub(backoff.UpdatedAt); got != 200*time.Millisecond {
		t.Fatalf("next_restart_at is %v after the decision, want exactly the 200ms backoff", got)
	}
	if !strings.Contains(backoff.LastError, "restarting in 200ms (attempt 1)") || backoff.PID != 0 {
		t.Fatalf("backoff status %+v, want the backoff reason and no pid", backoff)
	}
	if _, err := os.Stat(spec.HandoffPath); !os.IsNotExist(err) {
		t.Fatalf("handoff file during backoff: %v, want removed", err)
	}
	ready, _ := r.waitFor(t, "ready after backoff", isState(Ready))
	if ready.Restarts != 1 || ready.StartedAt.Before(backoff.NextRestartAt) {
		t.Fatalf("restart at %v with restarts=%d, want at or after %v with restarts=1", ready.StartedAt, ready.Restarts, backoff.NextRestartAt)
	}
}

func TestCrashLoopOpensTheCircuitBreaker(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_CRASH_ON_START": "1", "FAKE_EXIT_CODE": "2"})
	spec.Restart.MaxFailures = 3
	spec.Restart.Cooldown = 0
	r := startRun(t, spec)
	st, _ := r.waitFor(t, "failed", isState(Failed))
	want := "engine exited with status 2 during start; circuit breaker open after 3 consecutive failures; cooldown is 0s, so the replica stays failed until the next apply; last engine log lines:\n"
	if !strings.HasPrefix(st.LastError, want) {
		t.Fatalf("last_error %q\nwant prefix %q", st.LastError, want)
	}
	if st.Restarts != 2 || st.PID != 0 || !st.NextRestartAt.IsZero() {
		t.Fatalf("failed status %+v, want restarts=2, no pid, no next restart", st)
	}
}

// An engine that served, then cannot start again because of its
// configuration (the model file is gone), opens the breaker at once with
// the cause and the log line, instead of restart-looping up to
// max_failures.
func TestAConfigurationCauseOpensTheBreakerAtOnce(t *testing.T) {
	spec := fakeSpec(t, nil)
	spec.Restart.MaxFailures = 5
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))
	if err := os.Remove(spec.ModelPath); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(ready.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st, _ := r.waitFor(t, "failed", isState(Failed))
	if st.Cause != string(CauseModelLoadFailed) || !strings.Contains(st.CauseLine, spec.ModelPath) {
		t.Errorf("cause %q, line %q; want model_load_failed and its log line", st.Cause, st.CauseLine)
	}
	for _, want := range []string{"engine was killed by signal SIGABRT during start: model_load_failed (" + st.CauseLine + ")",
		"circuit breaker open at once: restarting cannot fix this; fix the configuration and run llorch apply, or wait for the try in 1m0s"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("last_error %q\nwant it to contain %q", st.LastError, want)
		}
	}
	if st.Restarts != 1 || st.NextRestartAt.IsZero() {
		t.Errorf("status %+v: want one restart (the one that failed) and the half-open try scheduled", st)
	}
}

func TestHalfOpenTryAfterCooldownClosesTheBreaker(t *testing.T) {
	spec := fakeSpec(t, counterKnobs(t, 2, map[string]string{"FAKE_CRASH_ON_START": "1"}))
	spec.Restart.MaxFailures = 2
	spec.Restart.Cooldown = 300 * time.Millisecond
	r := startRun(t, spec)
	open, _ := r.waitFor(t, "breaker open", isState(Failed))
	if !strings.Contains(open.LastError, "circuit breaker open after 2 consecutive failures; next try in 300ms") {
		t.Fatalf("last_error %q, want the breaker reason", open.LastError)
	}
	if got := open.NextRestartAt.Sub(open.UpdatedAt); got != 300*time.Millisecond {
		t.Fatalf("next_restart_at %v after opening, want the 300ms cooldown", got)
	}
	ready, _ := r.waitFor(t, "ready after the cooldown", isState(Ready))
	if ready.Restarts != 2 || ready.StartedAt.Before(open.NextRestartAt) {
		t.Fatalf("half-open start at %v restarts=%d, want at or after %v with restarts=2", ready.StartedAt, ready.Restarts, open.NextRestartAt)
	}
}

func TestUnhealthyEngineIsStoppedAndRestarted(t *testing.T) {
	spec := fakeSpec(t, counterKnobs(t, 1, map[string]string{"FAKE_UNHEALTHY_AFTER": "300ms"}))
	r := startRun(t, spec)
	first, _ := r.waitFor(t, "ready", isState(Ready))
	again, seen := r.waitFor(t, "ready after the restart", func(st Status) bool { return st.State == Ready && st.Restarts == 1 })
	if got := states(seen); !contains(got, Unhealthy) {
		t.Fatalf("states %v, want unhealthy before the restart", got)
	}
	want := "engine unhealthy: 2 liveness probes failed in a row (last: 500"
	if !strings.HasPrefix(again.LastError, want) || !strings.Contains(again.LastError, "; restarting in 0s (attempt 1)") {
		t.Fatalf("last_error %q, want prefix %q and the restart reason", again.LastError, want)
	}
	if again.PID == first.PID || Alive(first.PID) {
		t.Fatalf("unhealthy engine %d: new pid %d, old alive=%v", first.PID, again.PID, Alive(first.PID))
	}
	if log := readEngineLog(t, spec.RunDir); !strings.Contains(log, "cleaning up before exit...") {
		t.Fatalf("the unhealthy engine was not stopped with SIGTERM first; log:\n%s", log)
	}
}

func TestEngineIgnoringSIGTERMIsKilledAfterTheGrace(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_IGNORE_SIGTERM": "1"})
	spec.StopGrace = 200 * time.Millisecond
	c, st := launch(t, spec)
	if err := c.Stop(waitCtx(t), 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if Alive(st.PID) {
		t.Fatalf("engine %d ignoring SIGTERM survived the stop", st.PID)
	}
	if log := readEngineLog(t, spec.RunDir); !strings.Contains(log, "fake: ignoring terminated, as FAKE_IGNORE_SIGTERM asks") {
		t.Fatalf("engine never saw the SIGTERM; log:\n%s", log)
	}
	sl, err := os.ReadFile(filepath.Join(spec.RunDir, SupervisorLogFile))
	if err != nil || !strings.Contains(string(sl), "engine did not stop within its grace period; killing it") {
		t.Fatalf("supervisor log does not record the SIGKILL (%v):\n%s", err, sl)
	}
}

func TestStopWithAGraceOverridesTheSpec(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_IGNORE_SIGTERM": "1"})
	spec.StopGrace = time.Hour // a test that waited for it would time out
	c, st := launch(t, spec)
	if err := c.Stop(waitCtx(t), 100*time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if Alive(st.PID) || Alive(st.SupervisorPID) {
		t.Fatalf("after Stop(100ms): engine alive=%v, supervisor alive=%v", Alive(st.PID), Alive(st.SupervisorPID))
	}
}

func TestDrainWaitsForInFlightWorkThenStops(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_REQUEST_DELAY": "600ms"})
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))

	// A completion in flight: the engine's /slots shows it processing.
	completion := make(chan error, 1)
	go func() {
		resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/completion", spec.Port), "application/json", strings.NewReader(`{"prompt":"hi","n_predict":4}`))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("completion answered %s", resp.Status)
			}
		}
		completion <- err
	}()
	waitBusy(t, spec)

	drained := make(chan error, 1)
	go func() { drained <- r.client.Drain(waitCtx(t)) }()
	draining, _ := r.waitFor(t, "draining", isState(Draining))
	if h := readHandoffFile(t, spec.HandoffPath); !h.Draining || h.PID != ready.PID {
		t.Fatalf("handoff during drain = %+v, want draining=true for pid %d", h, ready.PID)
	}
	if draining.PID != ready.PID {
		t.Fatalf("draining pid %d, want %d", draining.PID, ready.PID)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := <-completion; err != nil {
		t.Fatalf("the in-flight completion was cut off: %v", err)
	}
	st, err := r.client.Status(waitCtx(t))
	if err != nil || st.State != Stopped || Alive(ready.PID) {
		t.Fatalf("after Drain: %+v, %v, engine alive=%v; want stopped and gone", st, err, Alive(ready.PID))
	}
	log := readEngineLog(t, spec.RunDir)
	done, term := strings.Index(log, "stop processing"), strings.Index(log, "cleaning up before exit...")
	if done < 0 || term < 0 || term < done {
		t.Fatalf("the engine got SIGTERM before its request finished (finished at %d, SIGTERM at %d); log:\n%s", done, term, log)
	}
	if _, err := os.Stat(spec.HandoffPath); !os.IsNotExist(err) {
		t.Fatalf("handoff after drain: %v, want removed", err)
	}
}

// waitBusy waits until the engine reports work in flight. The engine offers
// no event for it, so this polls /slots, as the supervisor's drain does.
func waitBusy(t *testing.T, spec Spec) {
	t.Helper()
	p := NewHTTPProber()
	tgt := Target{BaseURL: fmt.Sprintf("http://127.0.0.1:%d", spec.Port), Protocol: LegacyProtocol("")}
	ctx := waitCtx(t)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if n, err := p.InFlight(ctx, tgt); err == nil && n > 0 {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the completion never showed up as in flight")
		}
	}
}

func TestDrainStopsAtTheDeadlineWhenWorkDoesNotEnd(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_INFLIGHT": "1", "FAKE_REQUEST_DELAY": "1h"})
	spec.Drain.Deadline = 200 * time.Millisecond
	spec.StopGrace = 200 * time.Millisecond
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))
	if err := r.client.Drain(waitCtx(t)); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if Alive(ready.PID) {
		t.Fatalf("engine %d alive after a drain past its deadline", ready.PID)
	}
}

func TestPortAlreadyTakenFailsWithoutSpawning(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	spec := fakeSpec(t, nil)
	spec.Port = ln.Addr().(*net.TCPAddr).Port
	r := startRun(t, spec)
	st, _ := r.waitFor(t, "failed", isState(Failed))
	comm, _ := os.ReadFile("/proc/self/comm")
	want := fmt.Sprintf("port %d on 127.0.0.1 is already in use by another process (pid %d, %s); stop that process or give the pool another port",
		spec.Port, os.Getpid(), strings.TrimSpace(string(comm)))
	if st.LastError != want {
		t.Fatalf("last_error %q\nwant %q", st.LastError, want)
	}
	if st.PID != 0 || st.Restarts != 0 {
		t.Fatalf("status %+v, want no engine and no restarts", st)
	}
	if log := readEngineLog(t, spec.RunDir); log != "" {
		t.Fatalf("an engine was started on a taken port; engine.log:\n%s", log)
	}
	// No restart loop: the state stays failed.
	again, err := r.client.Status(waitCtx(t))
	if err != nil || again.State != Failed || again.Restarts != 0 {
		t.Fatalf("later status %+v, %v; want still failed with no restarts", again, err)
	}
}

func TestHandoffFileBelongsToTheReplicaThatTookItLast(t *testing.T) {
	old := fakeSpec(t, nil)
	newer := fakeSpec(t, nil)
	newer.HandoffPath = old.HandoffPath
	a := startRun(t, old)
	aReady, _ := a.waitFor(t, "old ready", isState(Ready))
	if h := readHandoffFile(t, old.HandoffPath); h.PID != aReady.PID {
		t.Fatalf("handoff pid %d, want old engine %d", h.PID, aReady.PID)
	}
	b := startRun(t, newer)
	bReady, _ := b.waitFor(t, "new ready", isState(Ready))
	if h := readHandoffFile(t, old.HandoffPath); h.PID != bReady.PID || h.URL != fmt.Sprintf("http://127.0.0.1:%d", newer.Port) {
		t.Fatalf("handoff %+v after the replacement became ready, want pid %d on port %d", h, bReady.PID, newer.Port)
	}
	// The old replica drains and stops: the new one's file stays untouched.
	if err := a.client.Drain(waitCtx(t)); err != nil {
		t.Fatalf("draining the old replica: %v", err)
	}
	if h := readHandoffFile(t, old.HandoffPath); h.PID != bReady.PID || h.Draining {
		t.Fatalf("handoff %+v after the old replica drained, want the new replica's, not draining", h)
	}
	if err := b.client.Drain(waitCtx(t)); err != nil {
		t.Fatalf("draining the new replica: %v", err)
	}
	if _, err := os.Stat(old.HandoffPath); !os.IsNotExist(err) {
		t.Fatalf("handoff after its owner drained: %v, want removed", err)
	}
}

func TestHandoffFileOfALiveReplicaIsNotRetakenAfterARestart(t *testing.T) {
	// The old replica crashes after the new one took the path: its
	// restarted engine must not take the path back.
	old := fakeSpec(t, nil)
	newer := fakeSpec(t, nil)
	newer.HandoffPath = old.HandoffPath
	a := startRun(t, old)
	aReady, _ := a.waitFor(t, "old ready", isState(Ready))
	b := startRun(t, newer)
	bReady, _ := b.waitFor(t, "new ready", isState(Ready))
	if err := syscall.Kill(aReady.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "old ready after its crash", func(st Status) bool { return st.State == Ready && st.Restarts == 1 })
	if h := readHandoffFile(t, old.HandoffPath); h.PID != bReady.PID {
		t.Fatalf("handoff pid %d after the old replica restarted, want the new replica's %d", h.PID, bReady.PID)
	}
}

func TestWatchReportsEveryChangeInOrder(t *testing.T) {
	spec := fakeSpec(t, nil)
	r := startRun(t, spec)
	r.waitFor(t, "ready", isState(Ready))
	stopped := make(chan error, 1)
	subscribed := make(chan struct{})
	go func() {
		var seen []Status
		err := r.client.Watch(waitCtx(t), func(st Status) bool {
			if seen == nil {
				close(subscribed)
			}
			seen = append(seen, st)
			return st.State != Stopped
		})
		if err != nil {
			stopped <- err
			return
		}
		if got := states(seen); len(got) < 3 || got[0] != Ready || got[len(got)-2] != Draining {
			stopped <- fmt.Errorf("watch saw %v, want ready … draining, stopped", got)
			return
		}
		stopped <- nil
	}()
	<-subscribed
	if err := r.client.Drain(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestSocketProtocolErrors(t *testing.T) {
	spec := fakeSpec(t, nil)
	r := startRun(t, spec)
	r.waitFor(t, "ready", isState(Ready))
	tests := []struct {
		name, request, want string
	}{
		{"unknown op", `{"op":"restart"}`, `{"error":"unknown op \"restart\"; use status, watch, drain, stop or update"}`},
		{"bad grace", `{"op":"stop","grace":"soon"}`, `{"error":"grace \"soon\" is not a duration; use a number and a unit, like \"10s\""}`},
		{"negative grace", `{"op":"stop","grace":"-1s"}`, `{"error":"grace \"-1s\" is not a duration; use a number and a unit, like \"10s\""}`},
		{"not json", `stop please`, `{"error":"request is not JSON: invalid character 's' looking for beginning of value"}`},
		{"bad drain deadline", `{"op":"drain","deadline":"soon"}`, `{"error":"deadline \"soon\" is not a duration; use a number and a unit, like \"5s\""}`},
		{"negative drain deadline", `{"op":"drain","deadline":"-5s"}`, `{"error":"deadline \"-5s\" is not a duration; use a number and a unit, like \"5s\""}`},
		{"update without settings", `{"op":"update"}`, `{"error":"update needs settings: send {\"op\":\"update\",\"settings\":{…}}"}`},
		{"update with bad settings", `{"op":"update","settings":{"health":{"interval":-1000000000,"failures":-1}}}`,
			`{"error":"invalid settings: health interval is -1s; it must be positive\nhealth failures -1 must be positive"}`},
		{"update with settings that are not settings", `{"op":"update","settings":{"health":"fast"}}`,
			`{"error":"request is not JSON: json: cannot unmarshal string into Go struct field Settings.settings.health of type supervisor.HealthPolicy"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("unix", r.client.path)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(tc.request + "\n")); err != nil {
				t.Fatal(err)
			}
			line, err := readLine(conn)
			if err != nil || line != tc.want {
				t.Fatalf("answer %q, %v\nwant %q", line, err, tc.want)
			}
		})
	}
	if st, err := r.client.Status(waitCtx(t)); err != nil || st.State != Ready {
		t.Fatalf("after bad requests: %+v, %v; want still ready", st, err)
	}
}

func readLine(c net.Conn) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
}

func TestLongRunDirectoryPutsTheSocketInTheTempDir(t *testing.T) {
	spec := fakeSpec(t, nil)
	long := filepath.Join(spec.RunDir, strings.Repeat("d", 60), strings.Repeat("e", 60))
	spec.RunDir = long
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, spec)
	r.waitFor(t, "ready", isState(Ready))
	b, err := os.ReadFile(filepath.Join(long, SocketPathFile))
	if err != nil {
		t.Fatalf("socket path file: %v", err)
	}
	path := strings.TrimSpace(string(b))
	if len(path) > maxSunPath || !strings.HasPrefix(path, os.TempDir()) {
		t.Fatalf("socket at %q, want a short path under %s", path, os.TempDir())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, %v; want mode 0600", path, fi.Mode().Perm(), err)
	}
	c, err := NewClient(long)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(waitCtx(t)); err != nil || st.State != Ready {
		t.Fatalf("status through the indirect socket: %+v, %v", st, err)
	}
}

func TestRunRefusesAnInvalidSpec(t *testing.T) {
	spec := fakeSpec(t, nil)
	spec.Binary, spec.Port = "", 70000
	err := Run(t.Context(), spec, Deps{Fs: afero.NewMemMapFs()})
	want := "invalid supervisor spec for pool.chat/r0: binary is empty: the spec must name the engine executable\nport 70000 is not between 1 and 65535"
	if err == nil || err.Error() != want {
		t.Fatalf("Run = %v\nwant %q", err, want)
	}
}

func TestEngineGetsSpecEnvOnTopOfTheSupervisorEnvironment(t *testing.T) {
	spec := fakeSpec(t, nil)
	pidFile := filepath.Join(spec.RunDir, "fake.pid")
	spec.Env["FAKE_PID_FILE"] = pidFile
	// The base environment slows the load (seen in ready_at) and names
	// another pid file, which Spec.Env overrides.
	r := startRunWith(t, spec, Deps{Environ: append(os.Environ(), "FAKE_LOAD_DELAY=150ms", "FAKE_PID_FILE=/nonexistent/overridden")})
	st, _ := r.waitFor(t, "ready", isState(Ready))
	if got := st.ReadyAt.Sub(st.StartedAt); got < 150*time.Millisecond {
		t.Fatalf("ready after %v: the base environment's FAKE_LOAD_DELAY did not reach the engine", got)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(st.PID) {
		t.Fatalf("Spec.Env's FAKE_PID_FILE holds %q, %v; want pid %d", b, err, st.PID)
	}
}

func readHandoffFile(t *testing.T, path string) handoff.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("handoff file: %v", err)
	}
	var h handoff.File
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("handoff file: %v", err)
	}
	return h
}
