package supervisor

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAdoptRefusesAPidThatNamesAnotherProcess(t *testing.T) {
	self := os.Getpid()
	ticks, err := procStartTicks(self)
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if _, err := adoptProcess(t.Context(), Adoption{PID: self, StartTicks: ticks + 1}); err == nil ||
		!strings.Contains(err.Error(), "that pid now names another process than the one imported") {
		t.Fatalf("wrong start time: %v", err)
	}
	if _, err := adoptProcess(t.Context(), Adoption{PID: 999999999}); err == nil || !strings.Contains(err.Error(), "it is not running any more") {
		t.Fatalf("no such pid: %v", err)
	}
}

func TestAdoptedProcessSignalsOnlyItselfAndSeesItsEnd(t *testing.T) {
	// A process the supervisor did not start (this test starts it, but
	// the adoption knows nothing of that). It is in this test's process
	// group, not a group of its own: a stop sent to the group would end
	// the test, one sent to -pid would fail with ESRCH.
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	reaped := make(chan struct{})
	go func() { _ = cmd.Wait(); close(reaped) }()
	ticks, err := procStartTicks(cmd.Process.Pid)
	if err != nil {
		t.Skip(err)
	}
	p, err := adoptProcess(t.Context(), Adoption{PID: cmd.Process.Pid, StartTicks: ticks})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case es := <-p.Done():
		if !es.Failed() || !strings.Contains(es.String(), "an imported engine is not the supervisor's child") {
			t.Fatalf("exit status %q", es)
		}
	case <-time.After(testTimeout):
		t.Fatal("the adopted process's end was not seen")
	}
	<-reaped
}
