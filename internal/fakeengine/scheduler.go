package fakeengine

import (
	"context"
	"slices"
	"sync"
)

// scheduler hands the server's slots to tasks in arrival order. A task that
// finds every slot busy waits in the deferred queue, which is what
// llamacpp:requests_deferred counts.
type scheduler struct {
	mu     sync.Mutex
	slots  []*ticket // nil = idle
	queue  []*ticket
	nextID int
}

// ticket is one task's claim on a slot.
type ticket struct {
	id      int
	slot    int           // -1 until granted
	granted chan struct{} // closed when slot is set
}

func newScheduler(n int) *scheduler {
	return &scheduler{slots: make([]*ticket, n)}
}

// submit registers a task. It takes an idle slot at once or joins the
// deferred queue (deferred is true); either way the task is counted before
// submit returns, so /slots and /metrics see it immediately.
func (s *scheduler) submit() (t *ticket, deferred bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t = &ticket{id: s.nextID, slot: -1, granted: make(chan struct{})}
	s.nextID++
	if i := slices.Index(s.slots, nil); i >= 0 {
		s.grant(t, i)
		return t, false
	}
	s.queue = append(s.queue, t)
	return t, true
}

func (s *scheduler) grant(t *ticket, slot int) {
	s.slots[slot] = t
	t.slot = slot
	close(t.granted)
}

// wait blocks until t holds a slot. It returns false, having given up the
// task's place or slot, when ctx ends or quit closes first.
func (s *scheduler) wait(ctx context.Context, quit <-chan struct{}, t *ticket) bool {
	select {
	case <-t.granted:
		return true
	case <-ctx.Done():
	case <-quit:
	}
	s.mu.Lock()
	granted := t.slot >= 0
	if !granted {
		s.queue = slices.DeleteFunc(s.queue, func(q *ticket) bool { return q == t })
	}
	s.mu.Unlock()
	if granted { // the slot arrived while we were giving up
		s.release(t)
	}
	return false
}

// release frees t's slot, handing it to the oldest deferred task if any. It
// reports whether every slot is now idle.
func (s *scheduler) release(t *ticket) (allIdle bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.slot < 0 || s.slots[t.slot] != t {
		return false
	}
	slot := t.slot
	s.slots[slot] = nil
	if len(s.queue) > 0 {
		next := s.queue[0]
		s.queue = s.queue[1:]
		s.grant(next, slot)
		return false
	}
	return !slices.ContainsFunc(s.slots, func(q *ticket) bool { return q != nil })
}

// slotView is one slot as /slots shows it.
type slotView struct {
	task       int // -1 when idle
	processing bool
}

func (s *scheduler) snapshot() (slots []slotView, deferred int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slots = make([]slotView, len(s.slots))
	for i, t := range s.slots {
		slots[i] = slotView{task: -1}
		if t != nil {
			slots[i] = slotView{task: t.id, processing: true}
		}
	}
	return slots, len(s.queue)
}
