package fakeengine

import (
	"context"
	"testing"
)

func TestSchedulerHandsSlotsOverInArrivalOrder(t *testing.T) {
	s := newScheduler(1)
	first, d1 := s.submit()
	second, d2 := s.submit()
	third, d3 := s.submit()
	if d1 || !d2 || !d3 {
		t.Fatalf("deferred = %v %v %v, want false true true", d1, d2, d3)
	}
	if _, deferred := s.snapshot(); deferred != 2 {
		t.Fatalf("deferred count %d, want 2", deferred)
	}

	if allIdle := s.release(first); allIdle {
		t.Error("release handed the slot on, yet reported all slots idle")
	}
	if !s.wait(t.Context(), nil, second) || second.slot != 0 {
		t.Fatalf("the oldest deferred task did not get the freed slot (slot %d)", second.slot)
	}

	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if s.wait(gone, nil, third) {
		t.Fatal("a cancelled wait reported a slot")
	}
	if views, deferred := s.snapshot(); deferred != 0 || views[0].task != second.id {
		t.Errorf("after cancelling the third task: slots %+v, deferred %d", views, deferred)
	}
	if !s.release(second) {
		t.Error("releasing the last busy slot did not report all slots idle")
	}
	if s.release(second) {
		t.Error("releasing a slot twice reported a change")
	}
}

func TestSchedulerWaitGivesBackASlotGrantedWhileGivingUp(t *testing.T) {
	s := newScheduler(1)
	first, _ := s.submit()
	second, _ := s.submit()
	s.release(first) // grants the slot to second before it ever waits
	quit := make(chan struct{})
	close(quit)
	// Both channels are ready; whichever select picks, the slot must end
	// up idle, never leaked to a task that gave up.
	if s.wait(t.Context(), quit, second) {
		s.release(second)
	}
	if views, _ := s.snapshot(); views[0].processing {
		t.Errorf("slot still held after its task gave up: %+v", views)
	}
}
