package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/agent"
	"github.com/llorch/llorch/internal/supervisor"
)

// start is StartAgent against the shared sshd; the agent is closed when
// t ends.
func start(t *testing.T, data string) *agent.Agent { return startB(t, data) }

func startB(t testing.TB, data string) *agent.Agent {
	t.Helper()
	a, err := agent.StartAgent(waitCtx(t), dial(t), self(t), data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// The whole life of a remote replica: the binary sent once, a real
// supervisor launched through the agent, surviving the SSH connection,
// found and stopped by the next agent.
func TestRemoteReplicaOutlivesTheConnection(t *testing.T) {
	data := dataDir(t)
	conn := dial(t)
	a, err := agent.StartAgent(waitCtx(t), conn, self(t), data)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.Uploaded || !strings.HasPrefix(a.Binary, data+"/bin/llorch-") || !strings.HasSuffix(a.Binary, "/llorch") {
		t.Errorf("first StartAgent: uploaded %v, binary %s; want an upload to %s/bin/llorch-SHA/llorch", a.Uploaded, a.Binary, data)
	}
	if a.Peer() != agent.Own() {
		t.Errorf("agent hello %+v, want %+v", a.Peer(), agent.Own())
	}
	if reps, err := a.Status(waitCtx(t)); err != nil || len(reps) != 0 {
		t.Fatalf("status of a new data dir = %+v, %v; want none", reps, err)
	}

	spec := fakeSpec(t, data, "r0", nil)
	st, err := a.Launch(waitCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != supervisor.Ready || st.SupervisorPID <= 0 {
		t.Fatalf("Launch = state %s, supervisor %d; want ready", st.State, st.SupervisorPID)
	}
	hs, err := a.Handoffs(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].RunDir != spec.RunDir || hs[0].Path != spec.HandoffPath || hs[0].File.PID != st.PID || hs[0].Error != "" {
		t.Fatalf("handoffs = %+v, want one for %s naming engine %d", hs, spec.RunDir, st.PID)
	}

	// The agent, its session and the connection go; the supervisor stays.
	a.Close()
	<-a.Exited()
	conn.Close()
	if !supervisor.Alive(st.SupervisorPID) {
		t.Fatalf("supervisor %d is gone after the SSH connection closed", st.SupervisorPID)
	}
	if _, ok := supervisor.Running(afero.NewOsFs(), spec.RunDir); !ok {
		t.Fatalf("supervisor of %s is not running after the SSH connection closed", spec.RunDir)
	}

	b := start(t, data)
	if b.Uploaded || b.Binary != a.Binary {
		t.Errorf("second StartAgent: uploaded %v, binary %s; want %s as it was", b.Uploaded, b.Binary, a.Binary)
	}
	reps, err := b.Status(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].RunDir != spec.RunDir || !reps[0].Running ||
		reps[0].Status.State != supervisor.Ready || reps[0].Status.SupervisorPID != st.SupervisorPID {
		t.Fatalf("status after reconnecting = %+v, want %s ready under supervisor %d", reps, spec.RunDir, st.SupervisorPID)
	}
	if err := b.Stop(waitCtx(t), spec.RunDir, 0); err != nil {
		t.Fatal(err)
	}
	if supervisor.Alive(st.SupervisorPID) {
		t.Errorf("supervisor %d still runs after Stop", st.SupervisorPID)
	}
	reps, err = b.Status(waitCtx(t))
	if err != nil || len(reps) != 1 || reps[0].Running || reps[0].Status.State != supervisor.Stopped {
		t.Fatalf("status after Stop = %+v, %v; want %s stopped", reps, err, spec.RunDir)
	}
	if hs, err := b.Handoffs(waitCtx(t)); err != nil || len(hs) != 0 {
		t.Errorf("handoffs after Stop = %+v, %v; want none", hs, err)
	}
	// Nothing runs there: a second stop is no error.
	if err := b.Stop(waitCtx(t), spec.RunDir, 0); err != nil {
		t.Errorf("Stop of a stopped replica: %v", err)
	}
}

// A start that fails leaves nothing running and says why, with the
// engine's log.
func TestRemoteLaunchFailureCarriesTheEngineLog(t *testing.T) {
	data := dataDir(t)
	a := start(t, data)
	spec := fakeSpec(t, data, "r1", map[string]string{"FAKE_CRASH_ON_START": "1", "FAKE_EXIT_CODE": "3"})
	_, err := a.Launch(waitCtx(t), spec)
	if err == nil {
		t.Fatal("Launch succeeded, want the start failure")
	}
	for _, want := range []string{
		`machine "gpu1": launching pool.chat/r1: pool.chat/r1 did not become ready: engine exited with status 3 during start; last engine log lines:` + "\n",
		"fake: fatal: crashing on start as FAKE_CRASH_ON_START asks, exit status 3",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Launch error:\n%s\nwant it to contain %q", err, want)
		}
	}
	reps, err := a.Status(waitCtx(t))
	if err != nil || len(reps) != 1 || reps[0].Running {
		t.Fatalf("status after a failed launch = %+v, %v; want %s not running", reps, err, spec.RunDir)
	}
}

func TestStartAgentErrors(t *testing.T) {
	conn := dial(t)
	if _, err := agent.StartAgent(waitCtx(t), conn, self(t), "srv/llorch"); err == nil ||
		err.Error() != `machine "gpu1": data_dir "srv/llorch" is not an absolute path; give the full path of llorch's directory on the machine` {
		t.Errorf("relative data dir: %v", err)
	}
	missing := t.TempDir() + "/llorch"
	if _, err := agent.StartAgent(waitCtx(t), conn, missing, "/srv/llorch"); err == nil ||
		err.Error() != `machine "gpu1": reading the llorch binary to run there: open `+missing+`: no such file or directory` {
		t.Errorf("missing local binary: %v", err)
	}
}

// An agent that exits before its hello (a binary that is not llorch, a
// broken install) fails with what it printed.
func TestAgentThatExitsBeforeItsHello(t *testing.T) {
	st, err := dial(t).Start(waitCtx(t), "echo 'llorch: cannot execute binary file' >&2; exit 126")
	if err != nil {
		t.Fatal(err)
	}
	_, err = agent.NewClient(waitCtx(t), st.Stdout, st.Stdin, agent.ClientOptions{Machine: "gpu1", Closer: st, Why: func() string {
		<-st.Exited() // stderr is complete once the session has ended
		return st.Stderr()
	}})
	want := `machine "gpu1": the llorch agent's connection ended before its hello: the agent exited or the connection dropped; it said: llorch: cannot execute binary file`
	if err == nil || err.Error() != want {
		t.Fatalf("NewClient = %v\nwant %s", err, want)
	}
}

// Drain through the agent ends with the engine stopped; the supervisor
// stays until Stop.
func TestRemoteDrain(t *testing.T) {
	data := dataDir(t)
	a := start(t, data)
	spec := fakeSpec(t, data, "r2", nil)
	if _, err := a.Launch(waitCtx(t), spec); err != nil {
		t.Fatal(err)
	}
	st, err := a.Drain(waitCtx(t), spec.RunDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != supervisor.Stopped || st.DrainCutOff {
		t.Errorf("Drain = state %s, cut off %v; want stopped, nothing cut off", st.State, st.DrainCutOff)
	}
	if err := a.Stop(waitCtx(t), spec.RunDir, 0); err != nil {
		t.Fatal(err)
	}
	_, err = a.Drain(waitCtx(t), spec.RunDir, 0)
	want := `machine "gpu1": draining ` + spec.RunDir + `: supervisor is not running in ` + spec.RunDir
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Drain of a stopped replica = %v\nwant it to begin %s", err, want)
	}
}
