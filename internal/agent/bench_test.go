package agent_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/supervisor"
)

// BenchmarkAgentStatus is the refresh of one machine: one status request
// over an agent already connected through the real sshd, answering for
// every run directory at once. The run directories hold a status.json
// naming a live process that is not their supervisor (this one), so each
// costs the agent what a replica whose supervisor is gone costs: the
// status read and a look at /proc/PID/cmdline (a running supervisor is
// usually found through the socket snapshot instead, which is cheaper).
//
//	go test -run '^$' -bench AgentStatus -benchtime 200x -count 5 ./internal/agent
func BenchmarkAgentStatus(b *testing.B) {
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("run_dirs=%d", n), func(b *testing.B) {
			data := b.TempDir()
			st := supervisor.Status{Addr: "pool.chat/r0", State: supervisor.Ready, PID: os.Getpid(),
				SupervisorPID: os.Getpid(), Port: 8080, UpdatedAt: time.Now()}
			body, _ := json.Marshal(st)
			for i := range n {
				dir := filepath.Join(data, "run", fmt.Sprintf("chat-r%d", i))
				if err := os.MkdirAll(dir, 0o700); err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, supervisor.StatusFile), body, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			a := startB(b, data)
			b.ResetTimer()
			for range b.N {
				reps, err := a.Status(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				if len(reps) != n {
					b.Fatalf("%d replicas, want %d", len(reps), n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}
