package views

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/providers"
)

// ProgressInterval is how often a long step reports that it is still
// running, as Terraform does.
const ProgressInterval = 10 * time.Second

var stepWords = map[apply.Step][3]string{
	// step: doing, still doing, done
	apply.StepEnsure:   {"Preparing engine...", "preparing", "Prepared"},
	apply.StepStart:    {"Starting...", "starting", "Ready"},
	apply.StepRestart:  {"Restarting...", "restarting", "Ready"},
	apply.StepDrain:    {"Draining...", "draining", "Drained and stopped"},
	apply.StepStop:     {"Stopping...", "stopping", "Stopped"},
	apply.StepUpdate:   {"Updating in place...", "updating", "Updated"},
	apply.StepCleanup:  {"Cleaning up...", "cleaning up", "Cleaned up"},
	apply.StepAdopt:    {"Adopting the successor an interrupted apply left serving...", "adopting the successor", "Successor adopted"},
	apply.StepImport:   {"Importing the running engine...", "importing", "Imported"},
	apply.StepRollback: {"Replacement failed; starting the previous engine again...", "starting the previous engine", "Previous engine serves again"},
}

// HumanHook prints apply progress for people:
//
//	pool.chat/r0: Starting...
//	pool.chat/r0: Still starting... [10s elapsed]
//	pool.chat/r0: Ready after 12s [pid=4242 port=8080]
type HumanHook struct {
	mu sync.Mutex // one line at a time
	w  io.Writer
	t  *ticker
}

// NewHumanHook writes to w; every is the "Still …" interval (0 = 10s).
func NewHumanHook(w io.Writer, c clock.Clock, every time.Duration) *HumanHook {
	return &HumanHook{w: w, t: newTicker(c, every)}
}

func (h *HumanHook) printf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(h.w, format, args...)
}

// PreStep prints the start line and starts the "Still …" ticker.
func (h *HumanHook) PreStep(addr string, step apply.Step) {
	words := stepWords[step]
	h.printf("%s: %s\n", addr, words[0])
	h.t.begin(addr, step, func(elapsed time.Duration) {
		h.printf("%s: Still %s... [%s elapsed]\n", addr, words[1], roundDuration(elapsed))
	})
}

// Progress prints provider events (downloads, builds) as they come; the
// provider decides how often.
func (h *HumanHook) Progress(addr string, ev providers.Event) {
	if ev.Message == "" {
		return
	}
	if ev.Total > 0 {
		h.printf("%s: %s [%d%%]\n", addr, ev.Message, ev.Current*100/ev.Total)
		return
	}
	h.printf("%s: %s\n", addr, ev.Message)
}

// PostStep stops the ticker and prints the outcome.
func (h *HumanHook) PostStep(addr string, step apply.Step, res apply.Result, err error) {
	elapsed := h.t.end(addr, step)
	words := stepWords[step]
	if err != nil {
		h.printf("%s: %s failed after %s\n", addr, capitalize(string(step)), roundDuration(elapsed))
		return
	}
	var extra string
	switch {
	case res.PID > 0 && res.Port > 0:
		extra = fmt.Sprintf(" [pid=%d port=%d]", res.PID, res.Port)
	case res.EngineVersion != "":
		extra = " [" + res.EngineVersion + "]"
	}
	h.printf("%s: %s after %s%s\n", addr, words[2], roundDuration(elapsed), extra)
}

// roundDuration prints durations the way people read them: 12ms, 1.2s,
// 12s, 2m5s.
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-32) + s[1:]
}
