package state

import (
	"slices"
	"testing"
)

func testState() *State {
	st := New(testLineage)
	st.Pools["pool.chat"] = &Pool{Engine: "llamacpp", Replicas: []*Replica{{ID: "r0"}, {ID: "r1"}, {ID: "r2"}}}
	st.Pools[`pool.embed["bge"]`] = &Pool{Engine: "llamacpp", Replicas: []*Replica{{ID: "r0"}}}
	st.Pools["pool.empty"] = &Pool{Engine: "llamacpp"}
	return st
}

func TestRemovePool(t *testing.T) {
	tests := []struct {
		name        string
		addr        string
		wantRemoved bool
		wantLeft    []string
	}{
		{"recorded pool is removed", "pool.chat", true, []string{`pool.embed["bge"]`, "pool.empty"}},
		{"for_each instance is removed by its full address", `pool.embed["bge"]`, true, []string{"pool.chat", "pool.empty"}},
		{"unknown pool is reported, nothing changes", "pool.nope", false, []string{"pool.chat", `pool.embed["bge"]`, "pool.empty"}},
		{"a replica address is not a pool", "pool.chat/r0", false, []string{"pool.chat", `pool.embed["bge"]`, "pool.empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := testState()
			if got := st.RemovePool(tc.addr); got != tc.wantRemoved {
				t.Errorf("RemovePool(%q) = %v, want %v", tc.addr, got, tc.wantRemoved)
			}
			if got := st.Addrs(); !slices.Equal(got, tc.wantLeft) {
				t.Errorf("pools left = %q, want %q", got, tc.wantLeft)
			}
		})
	}
}

func TestReplicasYieldsEveryReplicaInAddressOrder(t *testing.T) {
	st := testState()
	var got []string
	for addr, r := range st.Replicas() {
		got = append(got, addr)
		r.Restarts = 7 // yielded replicas are the recorded ones
	}
	want := []string{"pool.chat/r0", "pool.chat/r1", "pool.chat/r2", `pool.embed["bge"]/r0`}
	if !slices.Equal(got, want) {
		t.Errorf("Replicas() = %q, want %q", got, want)
	}
	if st.Pools["pool.chat"].Replicas[1].Restarts != 7 {
		t.Error("changing a yielded replica did not change the state")
	}
}

func TestReplicasStopsWhenTheLoopBreaks(t *testing.T) {
	n := 0
	for range testState().Replicas() {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("loop ran %d times, want 2", n)
	}
}

func TestReplicasOfEmptyState(t *testing.T) {
	for addr := range New(testLineage).Replicas() {
		t.Errorf("yielded %q from an empty state", addr)
	}
}

func TestRemoveReplica(t *testing.T) {
	tests := []struct {
		name        string
		id          string
		wantRemoved bool
		wantLeft    []string
	}{
		{"first", "r0", true, []string{"r1", "r2"}},
		{"middle keeps order", "r1", true, []string{"r0", "r2"}},
		{"last", "r2", true, []string{"r0", "r1"}},
		{"unknown id", "r9", false, []string{"r0", "r1", "r2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testState().Pools["pool.chat"]
			before := p.Replicas
			if got := p.RemoveReplica(tc.id); got != tc.wantRemoved {
				t.Errorf("RemoveReplica(%q) = %v, want %v", tc.id, got, tc.wantRemoved)
			}
			var left []string
			for _, r := range p.Replicas {
				left = append(left, r.ID)
			}
			if !slices.Equal(left, tc.wantLeft) {
				t.Errorf("replicas left = %q, want %q", left, tc.wantLeft)
			}
			if before[0].ID != "r0" || before[1].ID != "r1" || before[2].ID != "r2" {
				t.Error("RemoveReplica rewrote the slice a caller may still hold")
			}
		})
	}
}

func TestReplicaAddr(t *testing.T) {
	if got := ReplicaAddr(`pool.embed["bge"]`, "r1"); got != `pool.embed["bge"]/r1` {
		t.Errorf("ReplicaAddr = %q", got)
	}
}

func TestDeepCopySharesNothing(t *testing.T) {
	st := testState()
	cp := st.DeepCopy()
	cp.Pools["pool.chat"].Replicas[0].PID = 99
	cp.RemovePool("pool.empty")
	if st.Pools["pool.chat"].Replicas[0].PID != 0 || st.Pools["pool.empty"] == nil {
		t.Error("changing the copy changed the original")
	}
}
