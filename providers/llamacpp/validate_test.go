package llamacpp

import (
	"context"
	"strings"
	"testing"

	"github.com/llorch/llorch/providers"
)

func TestValidatePoolAcceptsAGoodPool(t *testing.T) {
	p := New(WithEnviron([]string{"HOME=/home/me"}), WithWorkingDir("/srv"))
	pool := testPool("file:models/q.gguf")
	pool.Model.SHA256 = strings.Repeat("aB", 32)
	pool.Devices = []int{0, 1}
	pool.Flags = []string{"--jinja", "--alias", "chat", "--metrics", "--seed", "-1"}
	pool.Env = map[string]string{"LLAMA_ARG_BATCH": "512"}
	cfg := poolBlock(t, "n_gpu_layers = 99\ntensor_split = [3, 1]\nthreads = 8\nparallel = 4\napi_key = \"s3cret\"")
	if diags := p.ValidatePool(context.Background(), providers.ValidatePoolRequest{Pool: pool, Config: cfg}); len(diags) > 0 {
		t.Fatal(describe(diags))
	}
}

func TestValidatePoolRejectsBadPools(t *testing.T) {
	cpuOnly := []int{}
	tests := []struct {
		name     string
		ref      string
		sha      string
		flags    []string
		devices  []int
		env      map[string]string
		block    string
		wantPath string
		want     []string
	}{
		{name: "-m in flags", flags: []string{"--jinja", "-m", "/x.gguf"}, wantPath: "flags[1]",
			want: []string{`flags[1] is "-m", which llorch sets from the model block`, "Remove it from flags"}},
		{name: "--model= in flags", flags: []string{"--model=/x.gguf"}, wantPath: "flags[0]",
			want: []string{`flags[0] is "--model"`, "model block"}},
		{name: "--host in flags", flags: []string{"--host", "0.0.0.0"}, wantPath: "flags[0]",
			want: []string{`"--host", which llorch sets from the pool's host attribute`}},
		{name: "--port in flags", flags: []string{"--threads-http", "2", "--port", "9000"}, wantPath: "flags[2]",
			want: []string{`flags[2] is "--port", which llorch sets from the pool's port attribute (replica i listens on port+i)`}},
		{name: "--port= in flags", flags: []string{"--port=9000"}, wantPath: "flags[0]",
			want: []string{`"--port", which llorch sets from the pool's port attribute`}},
		{name: "-c in flags", flags: []string{"-c", "8192"}, wantPath: "flags[0]",
			want: []string{`flags[0] is "-c", which llorch sets from the pool's ctx attribute`}},
		{name: "--ctx_size in flags", flags: []string{"--ctx_size", "8192"}, wantPath: "flags[0]",
			want: []string{`"--ctx_size", which llorch sets from the pool's ctx attribute`}},
		{name: "-hf in flags", flags: []string{"-hf", "org/repo"}, wantPath: "flags[0]",
			want: []string{`"-hf"`, "so llorch downloads, verifies and caches the model"}},
		{name: "--api-key in flags", flags: []string{"--api-key", "hunter2"}, wantPath: "flags[0]",
			want: []string{`flags[0] is "--api-key"`, "readable by every local user", "set api_key in the pool's llamacpp block", "LLAMA_API_KEY"}},
		{name: "--api-key-file in flags", flags: []string{"--api-key-file", "/k"}, wantPath: "flags[0]",
			want: []string{`"--api-key-file"`, "set api_key"}},
		{name: "--hf-token in flags", flags: []string{"--hf-token", "hf_x"}, wantPath: "flags[0]",
			want: []string{`"--hf-token"`, "set HF_TOKEN in llorch's environment"}},
		{name: "-ngl in flags with n_gpu_layers", flags: []string{"-ngl", "20"}, block: "n_gpu_layers = 10", wantPath: "flags[0]",
			want: []string{`flags[0] is "-ngl" and the pool's llamacpp block sets n_gpu_layers too`}},
		{name: "--n-gpu-layers= in flags with n_gpu_layers", flags: []string{"--n-gpu-layers=20"}, block: "n_gpu_layers = 10", wantPath: "flags[0]",
			want: []string{`"--n-gpu-layers"`, "sets n_gpu_layers too"}},
		{name: "-t in flags with threads", flags: []string{"-t", "4"}, block: "threads = 8", wantPath: "flags[0]",
			want: []string{`"-t" and the pool's llamacpp block sets threads too`}},
		{name: "--parallel in flags with parallel", flags: []string{"--parallel", "2"}, block: "parallel = 4", wantPath: "flags[0]",
			want: []string{"sets parallel too"}},
		{name: "a flag missing its value", flags: []string{"--jinja", "--threads"}, wantPath: "flags[1]",
			want: []string{`flags[1] is "--threads", which takes a value, but nothing follows it`}},
		{name: "GPU layers in flags on a CPU-only pool", flags: []string{"--gpu-layers", "5"}, devices: cpuOnly, wantPath: "flags[0]",
			want: []string{`"--gpu-layers" with 5, but devices = [] makes this pool CPU-only`}},
		{name: "n_gpu_layers on a CPU-only pool", block: "n_gpu_layers = 99", devices: cpuOnly, wantPath: "n_gpu_layers",
			want: []string{"n_gpu_layers = 99, but devices = [] makes this pool CPU-only", "list the GPUs to use in devices"}},
		{name: "tensor_split on a CPU-only pool", block: "tensor_split = [1, 1]", devices: cpuOnly, wantPath: "tensor_split",
			want: []string{"tensor_split spreads the model over GPUs, but devices = []"}},
		{name: "tensor_split longer than devices", block: "tensor_split = [1, 1, 1]", devices: []int{0, 1}, wantPath: "tensor_split",
			want: []string{"tensor_split has 3 entries but devices lists 2 GPU(s)"}},
		{name: "tensor_split of zeros", block: "tensor_split = [0, 0]", wantPath: "tensor_split",
			want: []string{"tensor_split needs at least one share above 0"}},
		{name: "a negative tensor_split share", block: "tensor_split = [1, -1]", wantPath: "tensor_split[1]",
			want: []string{"tensor_split[1] = -1 is negative"}},
		{name: "a fractional n_gpu_layers", block: "n_gpu_layers = 1.5", wantPath: "n_gpu_layers",
			want: []string{"n_gpu_layers = 1.5 is not allowed: n_gpu_layers must be a whole number from 0"}},
		{name: "zero threads", block: "threads = 0", wantPath: "threads",
			want: []string{"threads = 0 is not allowed"}},
		{name: "an empty api_key", block: `api_key = ""`, wantPath: "api_key",
			want: []string{"api_key is empty"}},
		{name: "CUDA_VISIBLE_DEVICES in env with devices", devices: []int{0}, env: map[string]string{"CUDA_VISIBLE_DEVICES": "1"},
			wantPath: `env["CUDA_VISIBLE_DEVICES"]`, want: []string{"env sets CUDA_VISIBLE_DEVICES and the pool sets devices"}},
		{name: "LLAMA_API_KEY in env", env: map[string]string{"LLAMA_API_KEY": "k"},
			wantPath: `env["LLAMA_API_KEY"]`, want: []string{"recorded in the state file in clear text", "set api_key"}},
		{name: "an unknown model scheme", ref: "s3://bucket/m.gguf", wantPath: "model.ref",
			want: []string{`model ref "s3://bucket/m.gguf" has an unsupported form ("s3:")`, "file:/path/model.gguf, https://host/model.gguf or hf:org/repo/file.gguf[@revision]"}},
		{name: "an empty model ref", ref: "", wantPath: "model.ref",
			want: []string{"the model ref is empty"}},
		{name: "a short sha256", sha: "abc123", wantPath: "model.sha256",
			want: []string{`sha256 = "abc123" is not a SHA-256 digest: it must be 64 hexadecimal characters (it has 6)`}},
		{name: "a sha256 with a prefix", sha: "sha256:" + strings.Repeat("a", 64), wantPath: "model.sha256",
			want: []string{"it has 71"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(WithEnviron([]string{"HOME=/home/me"}), WithWorkingDir("/srv"))
			ref := tc.ref
			if ref == "" && !strings.Contains(tc.name, "empty model ref") {
				ref = "file:/srv/m.gguf"
			}
			pool := testPool(ref)
			pool.Model.SHA256 = tc.sha
			pool.Flags = tc.flags
			pool.Devices = tc.devices
			pool.Env = tc.env
			diags := p.ValidatePool(context.Background(), providers.ValidatePoolRequest{Pool: pool, Config: poolBlock(t, tc.block)})
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if got := pathString(d.Attribute); got != tc.wantPath {
				t.Errorf("attribute = %q, want %q", got, tc.wantPath)
			}
		})
	}
}

func TestValidatePoolReportsEveryProblem(t *testing.T) {
	p := New(WithEnviron([]string{"HOME=/home/me"}))
	pool := testPool("s3://x")
	pool.Flags = []string{"--port", "1", "--api-key", "k"}
	pool.Model.SHA256 = "nope"
	diags := p.ValidatePool(context.Background(), providers.ValidatePoolRequest{Pool: pool, Config: poolBlock(t, "threads = 0")})
	var paths []string
	for _, d := range diags {
		paths = append(paths, pathString(d.Attribute))
	}
	want := "threads flags[0] flags[2] model.ref model.sha256"
	if got := strings.Join(paths, " "); got != want {
		t.Errorf("diagnostic paths = %q, want %q\n%s", got, want, describe(diags))
	}
}
