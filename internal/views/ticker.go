package views

import (
	"sync"
	"time"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/clock"
)

// ticker tracks in-flight steps and calls back every interval while one
// runs, so both the human and the JSON view can say "still running".
type ticker struct {
	clock clock.Clock
	every time.Duration

	mu      sync.Mutex
	running map[string]*running
}

type running struct {
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

func newTicker(c clock.Clock, every time.Duration) *ticker {
	if c == nil {
		c = clock.Real{}
	}
	if every <= 0 {
		every = ProgressInterval
	}
	return &ticker{clock: c, every: every, running: map[string]*running{}}
}

func key(addr string, step apply.Step) string { return addr + "\x00" + string(step) }

// begin starts tracking a step; tick runs every interval with the elapsed
// time until end is called.
func (t *ticker) begin(addr string, step apply.Step, tick func(elapsed time.Duration)) {
	run := &running{start: t.clock.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	t.mu.Lock()
	t.running[key(addr, step)] = run
	t.mu.Unlock()
	go func() {
		defer close(run.done)
		for {
			tm := t.clock.NewTimer(t.every)
			select {
			case <-run.stop:
				tm.Stop()
				return
			case <-tm.C():
				tick(t.clock.Since(run.start))
			}
		}
	}()
}

// end stops tracking a step and returns how long it ran.
func (t *ticker) end(addr string, step apply.Step) time.Duration {
	t.mu.Lock()
	run := t.running[key(addr, step)]
	delete(t.running, key(addr, step))
	t.mu.Unlock()
	if run == nil {
		return 0
	}
	close(run.stop)
	<-run.done
	return t.clock.Since(run.start)
}
