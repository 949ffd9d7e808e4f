package state

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
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

func TestDeepCopyCopiesEveryFieldAndSharesNothing(t *testing.T) {
	// Every field of every type is set, so that a field added later and
	// forgotten by DeepCopy shows up here as a difference or as sharing.
	st := New(testLineage)
	fill(reflect.ValueOf(st).Elem(), new(int))
	for _, p := range st.Pools {
		p.Replicas = append(p.Replicas, nil) // as a hand-edited file may hold
	}
	st.Pools["pool.nil"] = nil

	cp := st.DeepCopy()
	if !reflect.DeepEqual(cp, st) {
		t.Fatalf("copy differs from the original:\n%+v\n%+v", cp, st)
	}
	if path := shared(reflect.ValueOf(st), reflect.ValueOf(cp), "State"); path != "" {
		t.Errorf("the copy shares %s with the original", path)
	}
}

func TestDeepCopyKeepsNilAndEmptyApart(t *testing.T) {
	st := New(testLineage)
	st.Pools["pool.cpu"] = &Pool{Spec: &Spec{Devices: []int{}, Env: map[string]string{}}, Replicas: []*Replica{}}
	st.Pools["pool.default"] = &Pool{Spec: &Spec{}}
	cp := st.DeepCopy()
	if s := cp.Pools["pool.cpu"].Spec; s.Devices == nil || s.Env == nil || cp.Pools["pool.cpu"].Replicas == nil {
		t.Errorf("empty devices, env or replicas became nil: %+v", s)
	}
	if s := cp.Pools["pool.default"].Spec; s.Devices != nil || s.Env != nil || cp.Pools["pool.default"].Replicas != nil {
		t.Errorf("nil devices, env or replicas became empty: %+v", s)
	}
	if (*State)(nil).DeepCopy() != nil {
		t.Error("copy of a nil state is not nil")
	}
}

// fill sets every field reachable from v to a value that is not zero,
// with distinct numbers, two elements per slice and map.
func fill(v reflect.Value, n *int) {
	*n++
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(time.Date(2025, 1, 1, 0, 0, *n, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64, reflect.Uint8:
		v.SetUint(uint64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	default:
		panic("fill: no case for " + v.Type().String())
	}
}

// shared returns the path of the first pointer, slice or map that a and b
// share, or "".
func shared(a, b reflect.Value, path string) string {
	if a.Type() == reflect.TypeFor[time.Time]() {
		return "" // its *Location is immutable
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return shared(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if p := shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		if !a.IsNil() && !b.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
		for _, k := range a.MapKeys() {
			if bv := b.MapIndex(k); bv.IsValid() {
				if p := shared(a.MapIndex(k), bv, fmt.Sprintf("%s[%v]", path, k)); p != "" {
					return p
				}
			}
		}
	}
	return ""
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

// benchState is a state with n applied pools of two ready replicas each.
func benchState(n int) *State {
	st := New(testLineage)
	for i := range n {
		st.Pools[fmt.Sprintf("pool.p%04d", i)] = &Pool{
			Engine:   "llamacpp",
			SpecHash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
			Spec: &Spec{
				Engine: "llamacpp", Replicas: 2, Host: "127.0.0.1", Port: 8000 + 2*i, Ctx: 4096,
				Model:    ModelSpec{Ref: "file:/srv/models/q.gguf"},
				Devices:  []int{},
				Flags:    []string{"--parallel", "4"},
				Labels:   map[string]string{"team": "search"},
				Health:   HealthSpec{Path: "/health", Interval: "100ms", StartTimeout: "2m0s", LiveInterval: "5s", Failures: 3},
				Restart:  RestartSpec{Policy: "always", InitialBackoff: "1s", MaxBackoff: "1m0s", Multiplier: 2, Jitter: 0.1, ResetAfter: "5m0s", MaxFailures: 5, Cooldown: "5m0s"},
				Drain:    DrainSpec{Deadline: "30s", KillTimeout: "10s"},
				Update:   UpdateSpec{Strategy: "create_before_destroy"},
				Provider: []byte(`{"n_gpu_layers":99}`),
			},
			Prepared: &Prepared{BinaryPath: "/usr/local/bin/llama-server", Args: []string{"--parallel", "4", "--metrics"},
				Host: "127.0.0.1", Port: 8000 + 2*i, ModelPath: "/srv/models/q.gguf", EngineVersion: "llamacpp-b6600-cpu", DeviceMask: "0",
				BinarySize: 1 << 20, BinaryMtime: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)},
			Replicas: []*Replica{
				{ID: "r0", Port: 8000 + 2*i, PID: 10000 + i, SupervisorPID: 20000 + i, Status: StatusReady, RunDir: "/srv/.llorch/run/p-r0",
					StartedAt: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC), ReadyAt: time.Date(2025, 6, 1, 10, 0, 1, 0, time.UTC)},
				{ID: "r1", Port: 8001 + 2*i, PID: 30000 + i, SupervisorPID: 40000 + i, Status: StatusReady, RunDir: "/srv/.llorch/run/p-r1",
					StartedAt: time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC), ReadyAt: time.Date(2025, 6, 1, 10, 0, 1, 0, time.UTC)},
			},
		}
	}
	return st
}

func BenchmarkDeepCopy(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
			st := benchState(n)
			b.ReportAllocs()
			for b.Loop() {
				_ = st.DeepCopy()
			}
		})
	}
}

func TestPoolTimingsKeepTheLastFew(t *testing.T) {
	var p Pool
	for i := 1; i <= TimingsKept+2; i++ {
		p.RecordStart(time.Duration(i) * time.Second)
	}
	p.RecordStop(1500 * time.Microsecond)
	if want := []int{3000, 4000, 5000, 6000, 7000}; !slices.Equal(p.Timings.StartsMS, want) || !slices.Equal(p.Timings.StopsMS, []int{1}) {
		t.Fatalf("timings %+v, want starts %v and one stop of 1 ms", p.Timings, want)
	}
	c := p.DeepCopy()
	c.Timings.StartsMS[0] = 0
	if p.Timings.StartsMS[0] != 3000 {
		t.Fatal("DeepCopy shares the timings")
	}
}
