package sdktest

import (
	"sync"

	"github.com/llorch/llorch/providers"
)

// Events records progress events, from any goroutine: pass its Add as
// EnsureRequest.Progress (or to stage.Stager.Stage) and look at what came.
type Events struct {
	mu  sync.Mutex
	all []providers.Event
}

// Add records ev.
func (e *Events) Add(ev providers.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

// All returns the events recorded so far, in order.
func (e *Events) All() []providers.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]providers.Event(nil), e.all...)
}

// Stages counts the events recorded so far by stage.
func (e *Events) Stages() map[string]int {
	m := map[string]int{}
	for _, ev := range e.All() {
		m[ev.Stage]++
	}
	return m
}
