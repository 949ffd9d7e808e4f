package llamacpp

import (
	"reflect"
	"strings"
	"testing"

	"github.com/llorch/llorch/providers"
)

func TestBuildArgs(t *testing.T) {
	tests := []struct {
		name    string
		ctx     int
		port    int
		host    string
		devices []int
		flags   []string
		block   string
		want    string
	}{
		{name: "the pool's model, host and port come first, then --metrics",
			port: 8080, host: "127.0.0.1",
			want: "-m /m.gguf --host 127.0.0.1 --port 8080 --metrics"},
		{name: "ctx becomes -c, and an empty host means loopback",
			ctx: 4096, port: 9000,
			want: "-m /m.gguf --host 127.0.0.1 --port 9000 -c 4096 --metrics"},
		{name: "port 0 is kept for apply to rewrite per replica",
			want: "-m /m.gguf --host 127.0.0.1 --port 0 --metrics"},
		{name: "the llamacpp block's settings, in a fixed order, before the pool's flags",
			port: 8080, block: "parallel = 4\nthreads = 8\ntensor_split = [3, 1.5]\nn_gpu_layers = 99",
			flags: []string{"--jinja"},
			want:  "-m /m.gguf --host 127.0.0.1 --port 8080 --n-gpu-layers 99 --tensor-split 3,1.5 --threads 8 --parallel 4 --metrics --jinja"},
		{name: "a CPU-only pool runs with no GPU layers",
			port: 8080, devices: []int{},
			want: "-m /m.gguf --host 127.0.0.1 --port 8080 --n-gpu-layers 0 --metrics"},
		{name: "a CPU-only pool keeps the user's --n-gpu-layers 0 rather than adding a second",
			port: 8080, devices: []int{}, flags: []string{"-ngl", "0"},
			want: "-m /m.gguf --host 127.0.0.1 --port 8080 --metrics --n-gpu-layers 0"},
		{name: "--metrics is not added twice",
			port: 8080, flags: []string{"--metrics", "--slots"},
			want: "-m /m.gguf --host 127.0.0.1 --port 8080 --metrics --slots"},
		{name: "legacy GPU layer spellings become --n-gpu-layers",
			port: 8080, flags: []string{"-ngl", "12", "--jinja"},
			want: "-m /m.gguf --host 127.0.0.1 --port 8080 --metrics --n-gpu-layers 12 --jinja"},
		{name: "= forms and underscores are normalized too",
			port: 8080, flags: []string{"--gpu_layers=7", "--alias", "x"},
			want: "-m /m.gguf --host 127.0.0.1 --port 8080 --metrics --n-gpu-layers 7 --alias x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool := providers.PoolSpec{Host: tc.host, Port: tc.port, Ctx: tc.ctx, Devices: tc.devices, Flags: tc.flags}
			pc, diags := decodePoolConfig(poolBlock(t, tc.block))
			if diags.HasErrors() {
				t.Fatal(describe(diags))
			}
			got := strings.Join(buildArgs(pool, pc, "/m.gguf"), " ")
			if got != tc.want {
				t.Errorf("args =\n  %s\nwant\n  %s", got, tc.want)
			}
		})
	}
}

func TestNormalizeFlags(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{[]string{"-ngl", "5"}, []string{"--n-gpu-layers", "5"}},
		{[]string{"--ngl", "5"}, []string{"--n-gpu-layers", "5"}},
		{[]string{"--gpu-layers", "5"}, []string{"--n-gpu-layers", "5"}},
		{[]string{"-ngl=5"}, []string{"--n-gpu-layers", "5"}},
		{[]string{"--n_gpu_layers", "all"}, []string{"--n-gpu-layers", "all"}},
		{[]string{"--n-gpu-layers", "5"}, []string{"--n-gpu-layers", "5"}},
		// the value of a known flag is never read as a flag
		{[]string{"--parallel", "-ngl", "-t", "4"}, []string{"--parallel", "-ngl", "-t", "4"}},
		{[]string{"--jinja", "-ngl", "1", "--temp", "0.2", "--gpu-layers=2"},
			[]string{"--jinja", "--n-gpu-layers", "1", "--temp", "0.2", "--n-gpu-layers", "2"}},
		{nil, []string{}},
	}
	for _, tc := range tests {
		got := normalizeFlags(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("normalizeFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBuildArgsWorkWithForReplica(t *testing.T) {
	pool := providers.PoolSpec{Port: 0}
	pe := providers.PreparedEngine{Args: buildArgs(pool, poolConfig{}, "/m.gguf")}
	r1 := pe.ForReplica("r1", 8081)
	if got := strings.Join(r1.Args, " "); got != "-m /m.gguf --host 127.0.0.1 --port 8081 --metrics" {
		t.Errorf("ForReplica args = %s", got)
	}
}
