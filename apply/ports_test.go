package apply

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// The kernel may offer a free port twice before the first engine listens on
// it; two replicas must never be given the same one.
func TestPortPickerNeverHandsOutAPortTwice(t *testing.T) {
	offers := []int{41000, 41000, 41000, 41001}
	pp := portPicker{free: func(string) (int, error) {
		p := offers[0]
		offers = offers[1:]
		return p, nil
	}}
	first, err := pp.pick("127.0.0.1")
	if err != nil || first != 41000 {
		t.Fatalf("first pick = %d, %v; want 41000", first, err)
	}
	second, err := pp.pick("127.0.0.1")
	if err != nil || second != 41001 {
		t.Fatalf("second pick = %d, %v; want 41001 (41000 is already given)", second, err)
	}
}

func TestPortPickerGivesUpWhenTheKernelOffersOnlyUsedPorts(t *testing.T) {
	pp := portPicker{free: func(string) (int, error) { return 41000, nil }}
	if _, err := pp.pick("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	_, err := pp.pick("127.0.0.1")
	if err == nil || !strings.Contains(err.Error(), "give pools fixed ports") {
		t.Fatalf("pick with only used ports on offer: %v", err)
	}
}

func TestPortPickerPassesOnTheKernelsError(t *testing.T) {
	boom := errors.New("finding a free port on 10.9.9.9: cannot assign requested address")
	pp := portPicker{free: func(string) (int, error) { return 0, boom }}
	if _, err := pp.pick("10.9.9.9"); !errors.Is(err, boom) {
		t.Fatalf("pick = %v, want the bind error", err)
	}
}

func TestPortPickerWithRealPortsConcurrently(t *testing.T) {
	pp := portPicker{free: freePort}
	var mu sync.Mutex
	seen := map[int]bool{}
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			p, err := pp.pick("127.0.0.1")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[p] {
				t.Errorf("port %d handed out twice", p)
			}
			seen[p] = true
		})
	}
	wg.Wait()
}
