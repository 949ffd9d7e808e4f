package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// engineUnderTest is one llama-server the scripts in testdata/engine run
// against: the fake as each build behaves (FAKE_BUILD), always, and a real
// binary when LLORCH_TEST_LLAMA_SERVER names one.
type engineUnderTest struct {
	name   string
	binary string // what the provider's binary attribute says
	build  string // FAKE_BUILD for the fake; "" for a real binary
	model  string // a GGUF the engine can load
}

func enginesUnderTest(t *testing.T) []engineUnderTest {
	demo := filepath.Join(repoRoot(), "examples", "demo", "models", "demo.gguf")
	engines := []engineUnderTest{
		{name: "fake-4748", binary: "fake-llama-server", build: "4748", model: demo},
		{name: "fake-10573", binary: "fake-llama-server", build: "10573", model: demo},
	}
	real := os.Getenv("LLORCH_TEST_LLAMA_SERVER")
	if real == "" {
		t.Log("LLORCH_TEST_LLAMA_SERVER is not set: the engine scripts run against the fake engine only")
		return engines
	}
	// The generated test GGUFs carry no real weights: the real engine
	// needs a model it can load, which only the caller can name.
	model := os.Getenv("LLORCH_TEST_MODEL")
	if model == "" {
		t.Log("LLORCH_TEST_LLAMA_SERVER is set but LLORCH_TEST_MODEL is not: the real llama-server needs a GGUF it can load, so only the fake engine runs")
		return engines
	}
	if _, err := os.Stat(model); err != nil {
		t.Fatalf("LLORCH_TEST_MODEL=%s: %v", model, err)
	}
	if _, err := os.Stat(real); err != nil {
		t.Fatalf("LLORCH_TEST_LLAMA_SERVER=%s: %v", real, err)
	}
	return append(engines, engineUnderTest{name: "real", binary: real, model: model})
}

// TestEngineScript runs the scripts in testdata/engine, which use only what
// every llama-server does, against each engine under test. The engine's
// binary, build and model reach the configuration through env().
func TestEngineScript(t *testing.T) {
	for _, eng := range enginesUnderTest(t) {
		t.Run(eng.name, func(t *testing.T) {
			testscript.Run(t, testscript.Params{
				Dir:                 filepath.Join("testdata", "engine"),
				RequireExplicitExec: true,
				RequireUniqueNames:  true,
				Setup: func(e *testscript.Env) error {
					if err := setupEnv(e); err != nil {
						return err
					}
					e.Setenv("LLAMA_SERVER", eng.binary)
					e.Setenv("ENGINE_MODEL", eng.model)
					e.Setenv("FAKE_BUILD", eng.build)
					e.Setenv("ENGINE", eng.name)
					return nil
				},
				Cmds: scriptCmds,
			})
		})
	}
}

func init() {
	scriptCmds["handoffurl"] = cmdHandoffURL
	scriptCmds["complete"] = cmdComplete
	scriptCmds["gapwatch"] = cmdGapWatch
}

// handoffurl VAR FILE: set $VAR to the url of a handoff file.
func cmdHandoffURL(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: handoffurl VAR FILE")
	}
	ts.Setenv(args[0], handoffURL(ts.MkAbs(args[1])))
}

func handoffURL(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var f struct {
		URL      string `json:"url"`
		Draining bool   `json:"draining"`
	}
	if json.Unmarshal(data, &f) != nil || f.Draining {
		return ""
	}
	return f.URL
}

// complete URL: POST a short completion to URL/completion and check that
// the engine answers 200 with generated content.
func cmdComplete(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: complete URL")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post(args[0]+"/completion", "application/json", strings.NewReader(`{"prompt":"Hello","n_predict":4}`))
	ts.Check(err)
	defer resp.Body.Close()
	var body struct {
		Content         string `json:"content"`
		TokensPredicted int    `json:"tokens_predicted"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil || body.TokensPredicted == 0 {
		ts.Fatalf("POST %s/completion: status %d, answer %+v", args[0], resp.StatusCode, body)
	}
	fmt.Fprintf(ts.Stdout(), "completed %d tokens\n", body.TokensPredicted)
}

// gapWatch polls, every few milliseconds, the engine of every handoff file
// under a directory, the way a router follows them, and records the
// longest time in which no replica answered /health with 200.
type gapWatch struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	longest time.Duration
	rounds  int
	seen    map[string]bool // URLs that answered
}

var gapWatches sync.Map // *testscript.TestScript → *gapWatch

// gapwatch start DIR | gapwatch stop: while started, watch the replicas
// DIR's handoff files name; stop prints the longest gap and the URLs that
// served, and fails when any moment had no replica serving.
func cmdGapWatch(ts *testscript.TestScript, neg bool, args []string) {
	switch {
	case !neg && len(args) == 2 && args[0] == "start":
		w := &gapWatch{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
		gapWatches.Store(ts, w)
		go w.run(ts.MkAbs(args[1]))
		ts.Defer(func() { w.halt() })
	case len(args) == 1 && args[0] == "stop":
		v, ok := gapWatches.LoadAndDelete(ts)
		if !ok {
			ts.Fatalf("gapwatch stop without gapwatch start")
		}
		w := v.(*gapWatch)
		w.halt()
		w.mu.Lock()
		defer w.mu.Unlock()
		urls := make([]string, 0, len(w.seen))
		for u := range w.seen {
			urls = append(urls, u)
		}
		sort.Strings(urls)
		fmt.Fprintf(ts.Stdout(), "rounds %d, longest gap %s, served by %d URLs\n", w.rounds, w.longest, len(urls))
		if w.longest > 0 && !neg {
			ts.Fatalf("for %s no replica served (%d polling rounds)", w.longest, w.rounds)
		}
	default:
		ts.Fatalf("usage: gapwatch start DIR | gapwatch stop")
	}
}

func (w *gapWatch) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *gapWatch) run(dir string) {
	defer close(w.done)
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var gapStart time.Time
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			w.mu.Lock()
			if !gapStart.IsZero() {
				w.longest = max(w.longest, time.Since(gapStart))
			}
			w.mu.Unlock()
			return
		case <-tick.C:
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		served := ""
		for _, f := range files {
			u := handoffURL(f)
			if u == "" {
				continue
			}
			if resp, err := c.Get(u + "/health"); err == nil {
				var b bytes.Buffer
				_, _ = b.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					served = u
					break
				}
			}
		}
		now := time.Now()
		w.mu.Lock()
		w.rounds++
		if served != "" {
			w.seen[served] = true
			if !gapStart.IsZero() {
				w.longest = max(w.longest, now.Sub(gapStart))
				gapStart = time.Time{}
			}
		} else if gapStart.IsZero() {
			gapStart = now
		}
		w.mu.Unlock()
	}
}
