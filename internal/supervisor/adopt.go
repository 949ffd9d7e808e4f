package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Adoption names an engine that llorch did not start (by hand, or by
// systemd) and that `llorch import` put under this supervisor: it watches
// that process instead of spawning one, and when it ends, restarts the
// engine the llorch way, from the spec.
type Adoption struct {
	PID int `json:"pid"`
	// StartTicks is the process's start time (/proc/PID/stat field 22) when
	// it was imported: a pid that names another process by the time the
	// supervisor looks is refused, never adopted.
	StartTicks uint64 `json:"start_ticks"`
}

// errAdoptedExit is the exit status of an adopted engine: only a parent
// learns how its child ended.
var errAdoptedExit = errors.New("an imported engine is not the supervisor's child, so how it ended is unknown")

// adoptedProcess is a Process the supervisor did not start: watched
// through a pidfd, signalled by itself (its process group may be the
// shell's or systemd's, which a stop must not reach).
type adoptedProcess struct {
	pid        int
	startTicks uint64
	w          processWatch
	done       chan ExitStatus
}

// adoptProcess pins pid for watching. It fails when pid is gone or names
// another process than the one imported. The watch ends with life.
func adoptProcess(life context.Context, a Adoption) (*adoptedProcess, error) {
	ticks, err := procStartTicks(a.PID)
	switch {
	case err != nil:
		return nil, fmt.Errorf("adopting engine pid %d: it is not running any more (%v); run llorch apply to start the pool's engine", a.PID, err)
	case a.StartTicks != 0 && ticks != a.StartTicks:
		return nil, fmt.Errorf("adopting engine pid %d: that pid now names another process than the one imported; run llorch apply to start the pool's engine", a.PID)
	}
	w, err := watchProcess(a.PID)
	if err != nil {
		return nil, fmt.Errorf("adopting engine pid %d: %w", a.PID, err)
	}
	// The pid was pinned after its start time was read: read it once more,
	// so a process that exited in between (and a new one on its pid) is
	// not taken for the engine.
	if again, err := procStartTicks(a.PID); err != nil || again != ticks {
		w.close()
		return nil, fmt.Errorf("adopting engine pid %d: it exited while being adopted; run llorch apply to start the pool's engine", a.PID)
	}
	p := &adoptedProcess{pid: a.PID, startTicks: ticks, w: w, done: make(chan ExitStatus, 1)}
	// The pidfd stays open after the exit (one per supervisor), so that a
	// stop racing the exit signals nothing rather than a closed file.
	go func() {
		if err := w.wait(life); err != nil {
			w.close()
			return // the supervisor ended first; the engine keeps running
		}
		p.done <- ExitStatus{Err: errAdoptedExit}
		close(p.done)
	}()
	return p, nil
}

func (p *adoptedProcess) PID() int                { return p.pid }
func (p *adoptedProcess) Done() <-chan ExitStatus { return p.done }
func (p *adoptedProcess) StartTicks() uint64      { return p.startTicks }

func (p *adoptedProcess) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v is not a unix signal", sig)
	}
	if err := p.w.signal(p.pid, s); err != nil {
		return fmt.Errorf("sending %s to imported engine %d: %w", signalName(s), p.pid, err)
	}
	return nil
}
