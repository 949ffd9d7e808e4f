package plan

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/llorch/llorch/providers"
)

// A configuration may hold a thousand pools that differ only in name and
// port, all served by one binary and a few models. ValidatePool and
// PlanPool depend on the pool's shape, not on its address, id, port or
// replica count, so the Planner asks the provider once per distinct shape
// and shares the answer. Only clean answers (no diagnostics at all) are
// shared: a message may name the pool it was about.

// callMemo runs each distinct call once; concurrent callers of the same key
// wait for the first.
type callMemo[T any] struct {
	mu    sync.Mutex
	calls map[string]*memoCall[T]
}

type memoCall[T any] struct {
	done  chan struct{}
	val   T
	diags providers.Diagnostics
}

// do returns the shared answer for key, calling fn when there is none. An
// answer with diagnostics is not kept: the next caller asks again.
func (m *callMemo[T]) do(key string, fn func() (T, providers.Diagnostics)) (T, providers.Diagnostics) {
	m.mu.Lock()
	if m.calls == nil {
		m.calls = map[string]*memoCall[T]{}
	}
	if c, ok := m.calls[key]; ok {
		m.mu.Unlock()
		<-c.done
		if len(c.diags) == 0 {
			return c.val, nil
		}
		return fn()
	}
	c := &memoCall[T]{done: make(chan struct{})}
	m.calls[key] = c
	m.mu.Unlock()

	c.val, c.diags = fn()
	if len(c.diags) > 0 {
		m.mu.Lock()
		delete(m.calls, key)
		m.mu.Unlock()
	}
	close(c.done)
	return c.val, c.diags
}

// shapeKey identifies what a provider's ValidatePool and PlanPool may look
// at: everything in the pool but its address, id, port and replica count,
// plus the pool's provider block (as recorded, secrets hashed: a different
// secret is a different hash) and, for PlanPool, the prior engine version.
func shapeKey(engine string, ps providers.PoolSpec, providerJSON []byte, priorVersion string) string {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	field(engine)
	field(ps.Model.Ref)
	field(ps.Model.SHA256)
	field(ps.Host)
	field(strconv.Itoa(ps.Ctx))
	switch {
	case ps.Devices == nil:
		field("unset")
	default:
		field(ps.DeviceMask() + ";")
	}
	b.WriteString(strconv.Itoa(len(ps.Flags)))
	for _, f := range ps.Flags {
		field(f)
	}
	keys := make([]string, 0, len(ps.Env))
	for k := range ps.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b.WriteString(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(ps.Env[k])
	}
	field(string(providerJSON))
	field(priorVersion)
	return b.String()
}
