package views

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/providers"
)

// lockedBuffer is written by the ticker goroutine and read by the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// advance moves the fake clock once the step's ticker waits on it.
func advance(t *testing.T, c *clock.Fake, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.WaitTimers(ctx, 1); err != nil {
		t.Fatalf("no ticker is waiting: %v", err)
	}
	c.Advance(d)
}

func TestHumanHookSaysWhatRunsAndForHowLong(t *testing.T) {
	c := clock.NewFake(start)
	out := &lockedBuffer{}
	h := NewHumanHook(out, c, 0)

	h.PreStep("pool.chat/r0", apply.StepStart)
	advance(t, c, 10*time.Second)
	advance(t, c, 10*time.Second)
	advance(t, c, 1500*time.Millisecond)
	h.PostStep("pool.chat/r0", apply.StepStart, apply.Result{PID: 4242, Port: 8080}, nil)

	h.PreStep("pool.chat", apply.StepEnsure)
	h.Progress("pool.chat", providers.Event{Stage: "download", Message: "downloading hf:a/b/c.gguf: 1.0 GiB of 4.0 GiB", Current: 1 << 30, Total: 4 << 30})
	h.Progress("pool.chat", providers.Event{Stage: "engine", Message: "using /usr/bin/llama-server"})
	h.Progress("pool.chat", providers.Event{Stage: "build"}) // nothing to say
	c.Advance(12 * time.Millisecond)
	h.PostStep("pool.chat", apply.StepEnsure, apply.Result{EngineVersion: "llamacpp-b1-abc"}, nil)

	h.PreStep("pool.bad/r0", apply.StepDrain)
	h.PostStep("pool.bad/r0", apply.StepDrain, apply.Result{}, errors.New("supervisor gone"))

	want := `pool.chat/r0: Starting...
pool.chat/r0: Still starting... [10s elapsed]
pool.chat/r0: Still starting... [20s elapsed]
pool.chat/r0: Ready after 22s [pid=4242 port=8080]
pool.chat: Preparing engine...
pool.chat: downloading hf:a/b/c.gguf: 1.0 GiB of 4.0 GiB [25%]
pool.chat: using /usr/bin/llama-server
pool.chat: Prepared after 12ms [llamacpp-b1-abc]
pool.bad/r0: Draining...
pool.bad/r0: Drain failed after 0s
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if n := c.Timers(); n != 0 {
		t.Errorf("%d tickers still running after every step ended", n)
	}
}

func TestJSONHookEmitsOneEventPerLine(t *testing.T) {
	c := clock.NewFake(start)
	out := &lockedBuffer{}
	h := NewJSONHook(NewStream(out, c), 0)

	h.PreStep("pool.chat/r0", apply.StepStart)
	advance(t, c, 10*time.Second)
	// The ticker has reported once it waits on its next timer.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.WaitTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	h.Progress("pool.chat", providers.Event{Stage: "download", Message: "downloading", Current: 5, Total: 10})
	h.PostStep("pool.chat/r0", apply.StepStart, apply.Result{PID: 7, Port: 9}, nil)
	h.PreStep("pool.x/r0", apply.StepStop)
	h.PostStep("pool.x/r0", apply.StepStop, apply.Result{}, errors.New("boom"))

	var types []string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", sc.Text(), err)
		}
		if ev["@module"] != "llorch.ui" || ev["@timestamp"] == nil || ev["@message"] == nil {
			t.Errorf("event without the common fields: %v", ev)
		}
		types = append(types, ev["type"].(string))
	}
	want := []string{"apply_start", "apply_progress", "provision_progress", "apply_complete", "apply_start", "apply_errored"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Errorf("event types %v, want %v", types, want)
	}
	for _, line := range []string{
		`"@message":"pool.chat/r0: Still starting... [10s elapsed]"`,
		`"hook":{"address":"pool.chat/r0","elapsed_seconds":10,"step":"start"}`,
		`"@message":"pool.chat/r0: Ready after 10s"`,
		`"pid":7`,
		`"@level":"error","@message":"pool.x/r0: Stop failed: boom"`,
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %s:\n%s", line, out.String())
		}
	}
}
