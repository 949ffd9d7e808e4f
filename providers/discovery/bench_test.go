package discovery

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPluginStart measures what every llorch command pays per
// provider: start the plugin process, complete the go-plugin handshake
// (mutual TLS included), call GetSchema, and stop it.
func BenchmarkPluginStart(b *testing.B) {
	b.Run("builtin self-exec", func(b *testing.B) {
		r := newResolver(b, Options{SelfExe: installed(b, "llorch"), Builtins: map[string][]string{"selfok": {"internal-plugin", "testok"}}})
		benchmarkStart(b, r, "selfok")
	})
	// Without a lock file nothing hashes the executable first: the
	// difference to the next one is SecureConfig's sha256 of it (this test
	// binary is tens of MB; a real plugin is smaller).
	b.Run("third-party no lock file", func(b *testing.B) {
		benchmarkStart(b, newResolver(b, Options{Dirs: []string{linkPlugins(b, "testok")}}), "testok")
	})
	// A plugin on go-plugin alone makes its own P-521 key.
	b.Run("third-party stock go-plugin", func(b *testing.B) {
		benchmarkStart(b, newResolver(b, Options{Dirs: []string{linkPlugins(b, "stock")}}), "stock")
	})
	b.Run("third-party with lock file", func(b *testing.B) {
		dir := linkPlugins(b, "testok")
		lockPath := b.TempDir() + "/.llorch.lock.hcl"
		if _, err := Init(context.Background(), newResolver(b, Options{Dirs: []string{dir}}), lockPath, false, false); err != nil {
			b.Fatal(err)
		}
		r := newResolver(b, Options{Dirs: []string{dir}, LockFile: lockPath})
		benchmarkStart(b, r, "testok")
	})
}

// benchmarkStart also reports the CPU time llorch (host-cpu-ms/op) and the
// plugin processes (plugin-cpu-ms/op) spent per start, which on a shared
// machine says more than the wall time does.
func benchmarkStart(b *testing.B, r *Resolver, name string) {
	ctx := context.Background()
	var self0, children0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children0)
	for b.Loop() {
		p, err := r.Provider(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		if _, diags := p.GetSchema(ctx); diags.HasErrors() {
			b.Fatal(diags)
		}
		_ = p.Close()
	}
	var self1, children1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children1)
	b.ReportMetric(cpuMillis(self0, self1)/float64(b.N), "host-cpu-ms/op")
	b.ReportMetric(cpuMillis(children0, children1)/float64(b.N), "plugin-cpu-ms/op")
}

func cpuMillis(before, after syscall.Rusage) float64 {
	d := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	return float64(d) / float64(time.Millisecond)
}
