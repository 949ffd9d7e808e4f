package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/state/handoff"
)

func TestHandoffStaleTellsALiveEngineFromAGoneOrReusedPid(t *testing.T) {
	self := os.Getpid()
	ticks, err := procStartTicks(self)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    handoff.File
		want string
	}{
		{"running, recorded start time", handoff.File{PID: self, PIDStartTicks: ticks, BootID: BootID()}, ""},
		{"running, written before start times were recorded", handoff.File{PID: self}, ""},
		{"the pid now belongs to a later process", handoff.File{PID: self, PIDStartTicks: ticks + 1}, "is now another process"},
		{"no such process", handoff.File{PID: 1 << 30}, "is not running"},
		{"another boot", handoff.File{PID: self, BootID: "00000000-0000-0000-0000-000000000000"}, "before the machine last booted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := HandoffStale(tc.f)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("HandoffStale = %q, want %q", got, tc.want)
			}
		})
	}
}

// BenchmarkRemoveStaleHandoffs is what a command that reads the state pays
// to look at 1000 live replicas' handoff files: all of them (state
// commands, status, destroy), or none after a refresh saw every engine
// running (plan, apply).
func BenchmarkRemoveStaleHandoffs(b *testing.B) {
	fs := afero.NewOsFs()
	dir := b.TempDir()
	ticks, _ := procStartTicks(os.Getpid())
	refreshed := map[string]bool{}
	for i := range 1000 {
		f := handoff.File{PID: os.Getpid(), PIDStartTicks: ticks, BootID: BootID(), PoolID: "p", ReplicaID: strconv.Itoa(i)}
		path := filepath.Join(dir, handoff.FileName("p", strconv.Itoa(i)))
		if err := handoff.Write(fs, path, f); err != nil {
			b.Fatal(err)
		}
		refreshed[path] = true
	}
	for _, c := range []struct {
		name string
		live map[string]bool
	}{{"every-file", nil}, {"after-refresh", refreshed}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if removed, err := RemoveStaleHandoffs(fs, dir, c.live); err != nil || len(removed) != 0 {
					b.Fatal(removed, err)
				}
			}
		})
	}
}
