package llamacpp

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// gpu is one GPU as nvidia-smi reports it.
type gpu struct {
	Index   int
	FreeMiB int64
}

// gpuQuery is nvidia-smi's answer; ok is false when it is not on PATH or
// fails.
type gpuQuery struct {
	gpus []gpu
	ok   bool
}

// queryGPUs asks nvidia-smi for each GPU's free memory, once per command:
// concurrent callers share one run. ok is false when nvidia-smi is not on
// PATH or fails: the fit check is then skipped.
func (p *Provider) queryGPUs(ctx context.Context) (gpus []gpu, ok bool) {
	q, err := p.gpus.do(ctx, struct{}{}, func(ctx context.Context) (gpuQuery, bool, error) {
		gpus, ok := p.runNvidiaSMI(ctx)
		return gpuQuery{gpus: gpus, ok: ok}, true, nil
	})
	return q.gpus, err == nil && q.ok
}

func (p *Provider) runNvidiaSMI(ctx context.Context) (gpus []gpu, ok bool) {
	path, err := p.env.lookPath("nvidia-smi", p.workDir())
	if err != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, p.execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--query-gpu=index,memory.free", "--format=csv,noheader,nounits")
	cmd.Env = p.env
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil, false
	}
	return parseGPUs(out.String()), true
}

// parseGPUs reads "0, 24000" lines (index, free MiB); malformed lines are
// skipped.
func parseGPUs(out string) []gpu {
	var gpus []gpu
	for _, line := range strings.Split(out, "\n") {
		idx, free, ok := strings.Cut(line, ",")
		if !ok {
			continue
		}
		i, err1 := strconv.Atoi(strings.TrimSpace(idx))
		f, err2 := strconv.ParseInt(strings.TrimSpace(free), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		gpus = append(gpus, gpu{Index: i, FreeMiB: f})
	}
	return gpus
}
