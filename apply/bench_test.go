package apply_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state/local"
)

// BenchmarkApply and BenchmarkDestroy measure llorch's own cost of an apply
// (and a destroy) of N pools of one replica each: planning is outside the
// timer, the supervisors are the in-memory fake, and the state goes to a
// real directory on disk (file fsyncs included; afero's BasePathFs skips
// the directory syncs). Besides ns/op they report what
// the state store was asked to do per run: whole-state writes
// (writes/op), journal records appended (appends/op), bytes written to the state directory (state-B/op), file
// syncs (fsyncs/op), and the peak resident memory of the run (peak-RSS-MiB,
// Linux only: /proc/self/clear_refs resets the high-water mark).
// launch=5ms gives each launch that much time, as a real supervisor takes
// to start its engine, so that steps finish spread out as they do in a real
// apply instead of all at once.
func BenchmarkApply(b *testing.B) {
	for _, bc := range []struct {
		n      int
		launch time.Duration
	}{{10, 0}, {100, 0}, {1000, 0}, {1000, 5 * time.Millisecond}} {
		name := fmt.Sprintf("replicas=%d", bc.n)
		if bc.launch > 0 {
			name += fmt.Sprintf("/launch=%s", bc.launch)
		}
		n := bc.n
		b.Run(name, func(b *testing.B) {
			var m runMetrics
			for b.Loop() {
				b.StopTimer()
				e := newBenchEnv(b)
				e.fake.LaunchFunc = launchTaking(bc.launch)
				cfg := benchConfig(n)
				p := e.plan(cfg, plan.Options{})
				m.start(e)
				b.StartTimer()
				if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
					b.Fatalf("applying: %v", err)
				}
				b.StopTimer()
				m.stop(e)
				b.StartTimer()
			}
			m.report(b)
		})
	}
}

func BenchmarkDestroy(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			var m runMetrics
			for b.Loop() {
				b.StopTimer()
				e := newBenchEnv(b)
				cfg := benchConfig(n)
				if _, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0); err != nil {
					b.Fatalf("applying: %v", err)
				}
				p := e.plan(cfg, plan.Options{Destroy: true})
				m.start(e)
				b.StartTimer()
				if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
					b.Fatalf("destroying: %v", err)
				}
				b.StopTimer()
				m.stop(e)
				b.StartTimer()
			}
			m.report(b)
		})
	}
}

// newBenchEnv is newEnv with the state in a temporary directory of the
// real file system, through a file system that counts what is written, and
// a hook that keeps nothing. Run directories and handoff files stay in
// memory: writing them is the supervisors' work, not apply's.
func newBenchEnv(b *testing.B) *env {
	e := newEnv(b)
	e.counted = &countingFs{Fs: afero.NewBasePathFs(afero.NewOsFs(), b.TempDir())}
	e.store = &recordingStore{Store: local.New(e.counted, stateDir, local.Options{Version: "0.1.0-test"}), countOnly: true}
	e.hook = &recordingHook{discard: true}
	return e
}

// launchTaking is a LaunchFunc that takes d (nil for 0).
func launchTaking(d time.Duration) func(context.Context, supervisor.Spec) error {
	if d == 0 {
		return nil
	}
	return func(ctx context.Context, _ supervisor.Spec) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func benchConfig(n int) *config.Config {
	pools := make([]*config.Pool, n)
	for i := range pools {
		pools[i] = pool(fmt.Sprintf("pool.p%04d", i))
	}
	return configOf(pools...)
}

// runMetrics sums what the timed runs did.
type runMetrics struct {
	runs           int
	writes         int
	appends        int
	bytes, fsyncs  int64
	peakRSS        int64 // the highest of the runs
	rssUnavailable bool
}

func (m *runMetrics) start(e *env) {
	e.store.reset()
	e.counted.reset()
	debug.FreeOSMemory() // so the high-water mark starts from the live heap
	m.rssUnavailable = m.rssUnavailable || resetPeakRSS() != nil
}

func (m *runMetrics) stop(e *env) {
	m.runs++
	w, a := e.store.saves()
	m.writes += w
	m.appends += a
	m.bytes += e.counted.bytes.Load()
	m.fsyncs += e.counted.syncs.Load()
	if rss, err := peakRSS(); err == nil {
		m.peakRSS = max(m.peakRSS, rss)
	} else {
		m.rssUnavailable = true
	}
}

func (m *runMetrics) report(b *testing.B) {
	if m.runs == 0 {
		return
	}
	b.ReportMetric(float64(m.writes)/float64(m.runs), "writes/op")
	b.ReportMetric(float64(m.appends)/float64(m.runs), "appends/op")
	b.ReportMetric(float64(m.bytes)/float64(m.runs), "state-B/op")
	b.ReportMetric(float64(m.fsyncs)/float64(m.runs), "fsyncs/op")
	if !m.rssUnavailable {
		b.ReportMetric(float64(m.peakRSS)/(1<<20), "peak-RSS-MiB")
	}
}

// resetPeakRSS resets this process's resident high-water mark (VmHWM).
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads VmHWM, in bytes.
func peakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(data) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// countingFs counts the bytes written to and the syncs of the files it
// opens.
type countingFs struct {
	afero.Fs
	bytes, syncs atomic.Int64
}

func (c *countingFs) reset() { c.bytes.Store(0); c.syncs.Store(0) }

func (c *countingFs) Create(name string) (afero.File, error) {
	f, err := c.Fs.Create(name)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: c}, nil
}

func (c *countingFs) OpenFile(name string, flag int, perm os.FileMode) (afero.File, error) {
	f, err := c.Fs.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: c}, nil
}

func (c *countingFs) Open(name string) (afero.File, error) {
	f, err := c.Fs.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, fs: c}, nil
}

type countingFile struct {
	afero.File
	fs *countingFs
}

func (f *countingFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.fs.bytes.Add(int64(n))
	return n, err
}

func (f *countingFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	f.fs.bytes.Add(int64(n))
	return n, err
}

func (f *countingFile) WriteString(s string) (int, error) { return f.Write([]byte(s)) }

func (f *countingFile) Sync() error {
	f.fs.syncs.Add(1)
	return f.File.Sync()
}
