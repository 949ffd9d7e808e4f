package llamacpp

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/gguf"
)

// gate holds a memoized piece of work (a fake tool's run, a model read)
// until the test opens it, and reports each time one starts.
type gate struct {
	path, arrive string        // FIFOs: a gated tool writes a line to arrive, then reads one from path
	released     chan struct{} // or, for work in this process, closed by open
	arrived      chan struct{}
	open         func()
}

// newGate makes the FIFOs of a gate for fake tools. The test holds both
// open for reading and writing (which never blocks on Linux), so a tool
// never waits to open them, and opening the gate lets through more runs
// than expected: an extra run is counted, not hung.
func newGate(t *testing.T) *gate {
	t.Helper()
	dir := t.TempDir()
	g := &gate{path: filepath.Join(dir, "gate"), arrive: filepath.Join(dir, "arrive"), arrived: make(chan struct{}, 64)}
	var files []*os.File
	for _, path := range []string{g.path, g.arrive} {
		if err := unix.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files = append(files, f)
	}
	go func() {
		sc := bufio.NewScanner(files[1])
		for sc.Scan() {
			g.arrived <- struct{}{}
		}
	}()
	g.open = func() {
		if _, err := files[0].WriteString(strings.Repeat("go\n", 64)); err != nil {
			t.Error(err)
		}
	}
	return g
}

// fakeTool writes dir/name, a script that records each run (its
// arguments, one line) in dir/name.runs, waits at g when one is given, and
// prints out (a printf format).
func fakeTool(t testing.TB, dir, name string, g *gate, out string) (counter string) {
	t.Helper()
	counter = filepath.Join(dir, name+".runs")
	script := "#!/bin/sh\necho \"$*\" >> '" + counter + "'\n"
	if g != nil {
		script += "echo arrived > '" + g.arrive + "'\nread line < '" + g.path + "'\n"
	}
	script += "printf '" + out + "'\n"
	writeFile(t, dir, name, []byte(script), 0o755)
	return counter
}

const (
	commitB1 = "1111111111111111111111111111111111111111"
	commitB2 = "2222222222222222222222222222222222222222"
	// lsRemoteOut is what the fake git prints for ls-remote.
	lsRemoteOut = commitB1 + `\trefs/tags/b1\n` + commitB2 + `\trefs/tags/b2\n`
)

// together runs n calls of fn at once. It opens g once every caller has
// arrived somewhere: at the gated work, waiting for another caller's run
// of it (joined is the memo's hook), or returned. Then it returns the n
// results. fn runs off the test goroutine: it reports with t.Error, never
// t.Fatal.
func together[T any](t *testing.T, n int, joined *func(), g *gate, fn func() T) []T {
	t.Helper()
	*joined = func() { g.arrived <- struct{}{} }
	results := make([]T, n)
	var done sync.WaitGroup
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			results[i] = fn()
			g.arrived <- struct{}{}
		}()
	}
	for range n {
		<-g.arrived
	}
	g.open()
	done.Wait()
	return results
}

func TestPlanPoolAsksGitOncePerCommand(t *testing.T) {
	pool := testPool("file:" + tinyLlama(t))
	plan := func(t *testing.T, p *Provider) string {
		t.Helper()
		planned, diags := planPool(t, p, pool, "", nil)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		return planned.EngineVersion
	}
	want := "llamacpp-b1-" + commitB1[:9] + "-cpu"

	t.Run("one after another", func(t *testing.T) {
		bin := t.TempDir()
		counter := fakeTool(t, bin, "git", nil, lsRemoteOut)
		p := newTestProvider(t, testEnv(t, bin), sourceBlock(`git = "https://example.com/llama.cpp"`, `ref = "b1"`))
		for range 3 {
			if v := plan(t, p); v != want {
				t.Fatalf("EngineVersion = %q, want %q", v, want)
			}
		}
		if n := runs(t, counter); n != 1 {
			t.Errorf("git ran %d times for three pools, want 1", n)
		}
		if v := plan(t, newTestProvider(t, testEnv(t, bin), sourceBlock(`git = "https://example.com/llama.cpp"`, `ref = "b1"`))); v != want {
			t.Errorf("the next command planned %q", v)
		}
		if n := runs(t, counter); n != 2 {
			t.Errorf("git ran %d times over two commands, want 2", n)
		}
	})

	t.Run("pools planned at once share one ls-remote", func(t *testing.T) {
		bin := t.TempDir()
		g := newGate(t)
		counter := fakeTool(t, bin, "git", g, lsRemoteOut)
		p := newTestProvider(t, testEnv(t, bin), sourceBlock(`git = "https://example.com/llama.cpp"`, `ref = "b1"`))
		for _, v := range together(t, 8, &p.sourcePlans.joined, g, func() string {
			planned, diags := planPool(t, p, pool, "", nil)
			if len(diags) > 0 {
				t.Error(describe(diags))
			}
			return planned.EngineVersion
		}) {
			if v != want {
				t.Errorf("EngineVersion = %q, want %q", v, want)
			}
		}
		if n := runs(t, counter); n != 1 {
			t.Errorf("git ran %d times for eight pools planned at once, want 1", n)
		}
	})

	t.Run("concurrent resolutions of one ref share one ls-remote", func(t *testing.T) {
		bin := t.TempDir()
		g := newGate(t)
		counter := fakeTool(t, bin, "git", g, lsRemoteOut)
		p := newTestProvider(t, testEnv(t, bin), "")
		commits := together(t, 8, &p.refs.joined, g, func() string {
			c, err := p.lsRemote(context.Background(), "https://example.com/llama.cpp", "b2")
			if err != nil {
				t.Error(err)
			}
			return c
		})
		for _, c := range commits {
			if c != commitB2 {
				t.Errorf("commit = %q, want %q", c, commitB2)
			}
		}
		if n := runs(t, counter); n != 1 {
			t.Errorf("git ran %d times for eight resolutions, want 1", n)
		}
	})

	t.Run("a missing ref is not asked for again", func(t *testing.T) {
		bin := t.TempDir()
		counter := fakeTool(t, bin, "git", nil, lsRemoteOut)
		p := newTestProvider(t, testEnv(t, bin), sourceBlock(`git = "https://example.com/llama.cpp"`, `ref = "b9"`))
		for range 2 {
			_, diags := planPool(t, p, pool, "", nil)
			d := oneDiag(t, diags, providers.Error, `"b9" is not a tag or branch of https://example.com/llama.cpp`)
			if d.Summary != "Git Ref Not Found" {
				t.Errorf("summary %q", d.Summary)
			}
		}
		if n := runs(t, counter); n != 1 {
			t.Errorf("git ran %d times, want 1", n)
		}
	})
}

func TestConfigureWithAnotherBlockForgetsWhatItLearnt(t *testing.T) {
	bin := t.TempDir()
	counter := fakeTool(t, bin, "git", nil, lsRemoteOut)
	p := newTestProvider(t, testEnv(t, bin), "")
	pool := testPool("file:" + tinyLlama(t))
	steps := []struct {
		ref      string
		want     string
		wantRuns int
	}{
		{ref: "b1", want: "llamacpp-b1-" + commitB1[:9] + "-cpu", wantRuns: 1},
		{ref: "b1", want: "llamacpp-b1-" + commitB1[:9] + "-cpu", wantRuns: 1}, // the same block again
		{ref: "b2", want: "llamacpp-b2-" + commitB2[:9] + "-cpu", wantRuns: 2},
		{ref: "b1", want: "llamacpp-b1-" + commitB1[:9] + "-cpu", wantRuns: 3}, // forgotten by the b2 block
	}
	for i, s := range steps {
		block := providerBlock(t, sourceBlock(`git = "https://example.com/llama.cpp"`, `ref = "`+s.ref+`"`))
		if diags := p.Configure(context.Background(), providers.ConfigureRequest{Config: block}); len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		planned, diags := planPool(t, p, pool, "", nil)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if planned.EngineVersion != s.want {
			t.Errorf("step %d (ref %s): EngineVersion = %q, want %q", i, s.ref, planned.EngineVersion, s.want)
		}
		if n := runs(t, counter); n != s.wantRuns {
			t.Errorf("step %d (ref %s): git ran %d times in all, want %d", i, s.ref, n, s.wantRuns)
		}
	}
}

// countReads makes p count (and, with a gate, hold) its GGUF metadata
// reads.
func countReads(p *Provider, g *gate) *atomic.Int32 {
	var n atomic.Int32
	p.metaReader = func(path string) (*gguf.Metadata, error) {
		n.Add(1)
		if g != nil {
			g.arrived <- struct{}{}
			<-g.released
		}
		return readMeta(path)
	}
	return &n
}

func TestPlanPoolReadsEachModelOncePerFileVersion(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	plan := func(t *testing.T, p *Provider, model string) *providers.ModelInfo {
		t.Helper()
		planned, diags := planPool(t, p, testPool("file:"+model), "", nil)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		return planned.Model
	}

	t.Run("two models, six pools", func(t *testing.T) {
		dir := t.TempDir()
		a := writeFile(t, dir, "a.gguf", smallGGUF("llama", 512), 0o644)
		b := writeFile(t, dir, "b.gguf", smallGGUF("qwen2", 4096), 0o644)
		p := newTestProvider(t, testEnv(t, bin), "")
		reads := countReads(p, nil)
		for range 3 {
			if m := plan(t, p, a); m.Architecture != "llama" || m.ContextLength != 512 {
				t.Errorf("a: %+v", m)
			}
			if m := plan(t, p, b); m.Architecture != "qwen2" || m.ContextLength != 4096 {
				t.Errorf("b: %+v", m)
			}
		}
		if n := reads.Load(); n != 2 {
			t.Errorf("read model metadata %d times, want 2", n)
		}
	})

	t.Run("a changed model file is read again", func(t *testing.T) {
		p := newTestProvider(t, testEnv(t, bin), "")
		reads := countReads(p, nil)
		model := writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 512), 0o644)
		plan(t, p, model)
		steps := []struct {
			name   string
			change func() error
			arch   string
			ctxLen int
		}{
			{name: "another size", arch: "qwen2", ctxLen: 4096,
				change: func() error { return os.WriteFile(model, smallGGUF("qwen2", 4096), 0o644) }},
			{name: "the same size, another mtime", arch: "gemma", ctxLen: 8192, change: func() error {
				fi, err := os.Stat(model)
				if err != nil {
					return err
				}
				if err := os.WriteFile(model, smallGGUF("gemma", 8192), 0o644); err != nil {
					return err
				}
				return os.Chtimes(model, time.Now(), fi.ModTime().Add(time.Second))
			}},
		}
		for i, s := range steps {
			if err := s.change(); err != nil {
				t.Fatal(err)
			}
			m := plan(t, p, model)
			if m.Architecture != s.arch || m.ContextLength != s.ctxLen {
				t.Errorf("%s: planned %s with context %d, want %s with %d", s.name, m.Architecture, m.ContextLength, s.arch, s.ctxLen)
			}
			if n := reads.Load(); n != int32(i+2) {
				t.Errorf("%s: %d reads in all, want %d", s.name, n, i+2)
			}
		}
	})

	t.Run("a file that is not GGUF is read once", func(t *testing.T) {
		p := newTestProvider(t, testEnv(t, bin), "")
		reads := countReads(p, nil)
		notGGUF := writeFile(t, t.TempDir(), "m.bin", []byte("PK\x03\x04zip"), 0o644)
		for range 2 {
			_, diags := planPool(t, p, testPool("file:"+notGGUF), "", nil)
			if d := oneDiag(t, diags, providers.Error, `not "GGUF"`); d.Summary != "Model Is Not GGUF" {
				t.Errorf("summary %q", d.Summary)
			}
		}
		if n := reads.Load(); n != 1 {
			t.Errorf("read %d times, want 1", n)
		}
	})

	t.Run("a model that could not be read is read again", func(t *testing.T) {
		p := newTestProvider(t, testEnv(t, bin), "")
		model := writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 512), 0o644)
		var reads atomic.Int32
		p.metaReader = func(path string) (*gguf.Metadata, error) {
			if reads.Add(1) == 1 {
				return nil, withDiag("Model File Unreadable", modelRefPath, fmt.Errorf("reading model metadata: %w", fs.ErrPermission))
			}
			return readMeta(path)
		}
		_, diags := planPool(t, p, testPool("file:"+model), "", nil)
		oneDiag(t, diags, providers.Error, "permission denied")
		if m := plan(t, p, model); m.Architecture != "llama" {
			t.Errorf("after the failure: %+v", m)
		}
		if n := reads.Load(); n != 2 {
			t.Errorf("read %d times, want 2", n)
		}
	})

	t.Run("pools planned at once share one read", func(t *testing.T) {
		p := newTestProvider(t, testEnv(t, bin), "")
		released := make(chan struct{})
		g := &gate{arrived: make(chan struct{}, 64), released: released, open: func() { close(released) }}
		reads := countReads(p, g)
		model := tinyLlama(t)
		for _, m := range together(t, 8, &p.metas.joined, g, func() *providers.ModelInfo {
			planned, diags := planPool(t, p, testPool("file:"+model), "", nil)
			if len(diags) > 0 || planned.Model == nil {
				t.Errorf("%+v %s", planned, describe(diags))
				return nil
			}
			return planned.Model
		}) {
			if m == nil || m.Architecture != "llama" || m.ContextLength != 256 {
				t.Errorf("model = %+v", m)
			}
		}
		if n := reads.Load(); n != 1 {
			t.Errorf("read %d times for eight pools planned at once, want 1", n)
		}
	})
}

func TestPlanPoolLooksForTheBinaryOncePerCommand(t *testing.T) {
	early, late := t.TempDir(), t.TempDir()
	installed, lateRuns := fakeServer(t, late, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, early, late), "")
	model := writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 512), 0o644)
	pool := testPool("file:" + model)
	version := func(t *testing.T) string {
		t.Helper()
		planned, diags := planPool(t, p, pool, "", nil)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		return planned.EngineVersion
	}
	if v := version(t); v != "llamacpp-b4748-c392e5094" {
		t.Fatalf("EngineVersion = %q", v)
	}

	// A llama-server appearing earlier on PATH during the command is not
	// looked for again by the plan.
	_, earlyRuns := fakeServer(t, early, "llama-server", "version: 5000 (aaaaaaaaa)")
	if v := version(t); v != "llamacpp-b4748-c392e5094" {
		t.Errorf("after a binary appeared earlier on PATH: EngineVersion = %q, want the one found first", v)
	}
	// The binary found is still checked for each pool: replaced in place
	// (another size and mtime), it shows its new version.
	fakeServer(t, late, "llama-server", "version: 0.2.0-dev (build 10573, commit d775b8967)")
	if err := os.Chtimes(installed, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if v := version(t); v != "llamacpp-b10573-d775b8967" {
		t.Errorf("after the binary was replaced: EngineVersion = %q", v)
	}
	if n, m := runs(t, lateRuns), runs(t, earlyRuns); n != 2 || m != 0 {
		t.Errorf("--version ran %d times for the binary found and %d for the other, want 2 and 0", n, m)
	}
	// Ensure looks for itself.
	pe, diags := ensure(t, p, pool, nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if pe.BinaryPath != filepath.Join(early, "llama-server") || pe.EngineVersion != "llamacpp-b5000-aaaaaaaaa" {
		t.Errorf("Ensure prepared %s (%s), want the binary now first on PATH", pe.BinaryPath, pe.EngineVersion)
	}
}

func TestConcurrentPlansRunVersionOnce(t *testing.T) {
	bin := t.TempDir()
	g := newGate(t)
	counter := fakeTool(t, bin, "llama-server", g, `version: 4748 (c392e5094)\n`)
	p := newTestProvider(t, testEnv(t, bin), "")
	pool := testPool("file:" + writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 512), 0o644))
	for _, v := range together(t, 8, &p.versionRuns.joined, g, func() string {
		planned, diags := planPool(t, p, pool, "", nil)
		if len(diags) > 0 {
			t.Error(describe(diags))
			return ""
		}
		return planned.EngineVersion
	}) {
		if v != "llamacpp-b4748-c392e5094" {
			t.Errorf("EngineVersion = %q", v)
		}
	}
	if n := runs(t, counter); n != 1 {
		t.Errorf("--version ran %d times for eight pools planned at once, want 1", n)
	}
}

func TestAVersionlessBinaryIsRunOncePerCommand(t *testing.T) {
	bin := t.TempDir()
	counter := fakeTool(t, bin, "llama-server", nil, `usage: something else\n`)
	p := newTestProvider(t, testEnv(t, bin), "")
	pool := testPool("file:" + writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 512), 0o644))
	for range 3 {
		_, diags := planPool(t, p, pool, "", nil)
		d := oneDiag(t, diags, providers.Error, "--version printed no llama-server version", "usage: something else")
		if d.Summary != "Engine Version Unknown" {
			t.Errorf("summary %q", d.Summary)
		}
	}
	if n := runs(t, counter); n != 1 {
		t.Errorf("--version ran %d times, want 1", n)
	}
}
