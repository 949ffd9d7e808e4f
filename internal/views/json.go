package views

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/providers"
)

// JSONUIVersion versions the machine-readable event stream of -json.
const JSONUIVersion = "1.0"

// Stream writes one JSON object per line, Terraform's -json UI shape:
//
//	{"@level":"info","@message":"…","@module":"llorch.ui","@timestamp":"…","type":"apply_start",…}
type Stream struct {
	mu    sync.Mutex
	enc   *json.Encoder
	clock clock.Clock
}

// NewStream writes events to w.
func NewStream(w io.Writer, c clock.Clock) *Stream {
	if c == nil {
		c = clock.Real{}
	}
	return &Stream{enc: json.NewEncoder(w), clock: c}
}

// Emit writes one event; fields are merged into the top-level object.
func (s *Stream) Emit(level, typ, message string, fields map[string]any) {
	ev := map[string]any{
		"@level":     level,
		"@message":   message,
		"@module":    "llorch.ui",
		"@timestamp": s.clock.Now().UTC().Format(time.RFC3339Nano),
		"type":       typ,
	}
	for k, v := range fields {
		ev[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.enc.Encode(ev)
}

// JSONHook turns apply progress into events: apply_start, apply_progress
// (every ProgressInterval), provision_progress, apply_complete, apply_errored.
type JSONHook struct {
	s *Stream
	t *ticker
}

// NewJSONHook emits on s; every is the apply_progress interval (0 = 10s).
func NewJSONHook(s *Stream, every time.Duration) *JSONHook {
	return &JSONHook{s: s, t: newTicker(s.clock, every)}
}

func hookFields(addr string, step apply.Step) map[string]any {
	return map[string]any{"hook": map[string]any{"address": addr, "step": string(step)}}
}

func (h *JSONHook) PreStep(addr string, step apply.Step) {
	h.s.Emit("info", "apply_start", addr+": "+stepWords[step][0], hookFields(addr, step))
	h.t.begin(addr, step, func(elapsed time.Duration) {
		f := hookFields(addr, step)
		f["hook"].(map[string]any)["elapsed_seconds"] = int(elapsed.Seconds())
		h.s.Emit("info", "apply_progress",
			addr+": Still "+stepWords[step][1]+"... ["+roundDuration(elapsed)+" elapsed]", f)
	})
}

func (h *JSONHook) Progress(addr string, ev providers.Event) {
	f := map[string]any{"hook": map[string]any{
		"address": addr, "stage": ev.Stage, "current": ev.Current, "total": ev.Total,
	}}
	h.s.Emit("info", "provision_progress", addr+": "+ev.Message, f)
}

func (h *JSONHook) PostStep(addr string, step apply.Step, res apply.Result, err error) {
	elapsed := h.t.end(addr, step)
	f := hookFields(addr, step)
	hk := f["hook"].(map[string]any)
	hk["elapsed_seconds"] = elapsed.Seconds()
	if err != nil {
		hk["error"] = err.Error()
		h.s.Emit("error", "apply_errored", addr+": "+capitalize(string(step))+" failed: "+err.Error(), f)
		return
	}
	if res.PID > 0 {
		hk["pid"] = res.PID
	}
	if res.Port > 0 {
		hk["port"] = res.Port
	}
	if res.EngineVersion != "" {
		hk["engine_version"] = res.EngineVersion
	}
	h.s.Emit("info", "apply_complete", addr+": "+stepWords[step][2]+" after "+roundDuration(elapsed), f)
}
