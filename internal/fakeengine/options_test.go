package fakeengine

import (
	"reflect"
	"strings"
	"testing"
)

type optionsCase struct {
	name string
	args []string
	env  map[string]string
	want func(o *options) // changes from defaultOptions()
}

var acceptedCases = []optionsCase{
	{"no arguments gives the defaults", nil, nil, func(o *options) {}},
	{"-m", []string{"-m", "a.gguf"}, nil, func(o *options) { o.model = "a.gguf" }},
	{"--model", []string{"--model", "a.gguf"}, nil, func(o *options) { o.model = "a.gguf" }},
	{"--model=", []string{"--model=a=b.gguf"}, nil, func(o *options) { o.model = "a=b.gguf" }},
	{"-m=", []string{"-m=a.gguf"}, nil, func(o *options) { o.model = "a.gguf" }},
	{"--host", []string{"--host", "0.0.0.0"}, nil, func(o *options) { o.host = "0.0.0.0" }},
	{"--port", []string{"--port", "9000"}, nil, func(o *options) { o.port = 9000 }},
	{"--port=", []string{"--port=0"}, nil, func(o *options) { o.port = 0 }},
	{"-c", []string{"-c", "2048"}, nil, func(o *options) { o.ctxSize = 2048 }},
	{"--ctx-size", []string{"--ctx-size", "512"}, nil, func(o *options) { o.ctxSize = 512 }},
	{"--ctx-size 0 means the default", []string{"--ctx-size", "0"}, nil, func(o *options) { o.ctxSize = 4096 }},
	{"-t", []string{"-t", "4"}, nil, func(o *options) { o.threads = 4 }},
	{"--threads", []string{"--threads", "8"}, nil, func(o *options) { o.threads = 8 }},
	{"-np", []string{"-np", "4"}, nil, func(o *options) { o.parallel = 4 }},
	{"--parallel", []string{"--parallel", "2"}, nil, func(o *options) { o.parallel = 2 }},
	{"-a", []string{"-a", "chat"}, nil, func(o *options) { o.alias = "chat" }},
	{"--alias", []string{"--alias", "chat"}, nil, func(o *options) { o.alias = "chat" }},
	{"-ngl", []string{"-ngl", "99"}, nil, func(o *options) { o.gpuLayers = "99" }},
	{"--gpu-layers", []string{"--gpu-layers", "0"}, nil, func(o *options) { o.gpuLayers = "0" }},
	{"--n-gpu-layers", []string{"--n-gpu-layers", "-1"}, nil, func(o *options) { o.gpuLayers = "-1" }},
	{"--n-gpu-layers=", []string{"--n-gpu-layers=12"}, nil, func(o *options) { o.gpuLayers = "12" }},
	{"-ngl all", []string{"-ngl", "all"}, nil, func(o *options) { o.gpuLayers = "all" }},
	{"-ts", []string{"-ts", "3,1"}, nil, func(o *options) { o.tensorSplit = "3,1" }},
	{"--tensor-split", []string{"--tensor-split", "0.5/0.5"}, nil, func(o *options) { o.tensorSplit = "0.5/0.5" }},
	{"-dev", []string{"-dev", "CUDA0,CUDA1"}, nil, func(o *options) { o.devices = "CUDA0,CUDA1" }},
	{"--device", []string{"--device", "none"}, nil, func(o *options) { o.devices = "none" }},
	{"--api-key", []string{"--api-key", "k1"}, nil, func(o *options) { o.apiKeys = []string{"k1"} }},
	{"--api-key with a list", []string{"--api-key", "k1, k2,"}, nil, func(o *options) { o.apiKeys = []string{"k1", "k2"} }},
	{"--metrics", []string{"--metrics"}, nil, func(o *options) { o.metrics = true }},
	{"--no-slots", []string{"--no-slots"}, nil, func(o *options) { o.slots = false }},
	{"--slots after --no-slots", []string{"--no-slots", "--slots"}, nil, func(o *options) {}},
	{"--no-webui", []string{"--no-webui"}, nil, func(o *options) { o.noWebUI = true }},
	{"--version", []string{"--version"}, nil, func(o *options) { o.version = true }},
	{"--list-devices", []string{"--list-devices"}, nil, func(o *options) { o.listDevices = true }},
	{"-fa", []string{"-fa", "on"}, nil, func(o *options) { o.flashAttn = "on" }},
	{"--flash-attn", []string{"--flash-attn", "off"}, nil, func(o *options) { o.flashAttn = "off" }},
	{"--flash-attn=", []string{"--flash-attn=auto"}, nil, func(o *options) { o.flashAttn = "auto" }},
	{"-b", []string{"-b", "512"}, nil, func(o *options) { o.batchSize = 512 }},
	{"--batch-size", []string{"--batch-size", "1024"}, nil, func(o *options) { o.batchSize = 1024 }},
	{"-ub", []string{"-ub", "128"}, nil, func(o *options) { o.ubatchSize = 128 }},
	{"--ubatch-size", []string{"--ubatch-size", "256"}, nil, func(o *options) { o.ubatchSize = 256 }},
	{"--mlock", []string{"--mlock"}, nil, func(o *options) { o.mlock = true }},
	{"--no-mmap", []string{"--no-mmap"}, nil, func(o *options) { o.noMmap = true }},
	{"--jinja", []string{"--jinja"}, nil, func(o *options) { o.jinja = true }},
	{"-fit", []string{"-fit", "off"}, nil, func(o *options) { o.fit = "off" }},
	{"--fit", []string{"--fit", "on"}, nil, func(o *options) { o.fit = "on" }},
	{"--log-disable", []string{"--log-disable"}, nil, func(o *options) { o.logDisable = true }},
	{"-v", []string{"-v"}, nil, func(o *options) { o.verbose = true }},
	{"--verbose", []string{"--verbose"}, nil, func(o *options) { o.verbose = true }},
	{"--timeout", []string{"--timeout", "30"}, nil, func(o *options) { o.timeout = 30 }},
	{"--threads-http", []string{"--threads-http", "8"}, nil, func(o *options) { o.threadsHTTP = 8 }},
	{"--no-cont-batching", []string{"--no-cont-batching"}, nil, func(o *options) { o.contBatch = false }},
	{"--cont-batching after --no-cont-batching", []string{"--no-cont-batching", "--cont-batching"}, nil, func(o *options) {}},
	{"--temp", []string{"--temp", "0.2"}, nil, func(o *options) { o.temp = 0.2 }},
	{"-n", []string{"-n", "64"}, nil, func(o *options) { o.nPredict = 64 }},
	{"--n-predict", []string{"--n-predict", "32"}, nil, func(o *options) { o.nPredict = 32 }},
	{"--seed", []string{"--seed", "42"}, nil, func(o *options) { o.seed = 42 }},
	{"a value that looks like a flag", []string{"--seed", "-5"}, nil, func(o *options) { o.seed = -5 }},
	{"the last of a repeated flag wins", []string{"--port", "1", "--port", "2"}, nil, func(o *options) { o.port = 2 }},

	{"LLAMA_ARG_MODEL", nil, map[string]string{"LLAMA_ARG_MODEL": "e.gguf"}, func(o *options) { o.model = "e.gguf" }},
	{"LLAMA_ARG_HOST", nil, map[string]string{"LLAMA_ARG_HOST": "::1"}, func(o *options) { o.host = "::1" }},
	{"LLAMA_ARG_PORT", nil, map[string]string{"LLAMA_ARG_PORT": "9001"}, func(o *options) { o.port = 9001 }},
	{"LLAMA_ARG_CTX_SIZE", nil, map[string]string{"LLAMA_ARG_CTX_SIZE": "1024"}, func(o *options) { o.ctxSize = 1024 }},
	{"LLAMA_ARG_N_GPU_LAYERS", nil, map[string]string{"LLAMA_ARG_N_GPU_LAYERS": "33"}, func(o *options) { o.gpuLayers = "33" }},
	{"LLAMA_ARG_THREADS", nil, map[string]string{"LLAMA_ARG_THREADS": "6"}, func(o *options) { o.threads = 6 }},
	{"LLAMA_ARG_N_PARALLEL", nil, map[string]string{"LLAMA_ARG_N_PARALLEL": "3"}, func(o *options) { o.parallel = 3 }},
	{"LLAMA_ARG_ALIAS", nil, map[string]string{"LLAMA_ARG_ALIAS": "x"}, func(o *options) { o.alias = "x" }},
	{"LLAMA_API_KEY", nil, map[string]string{"LLAMA_API_KEY": "s3"}, func(o *options) { o.apiKeys = []string{"s3"} }},
	{"LLAMA_ARG_ENDPOINT_METRICS", nil, map[string]string{"LLAMA_ARG_ENDPOINT_METRICS": "1"}, func(o *options) { o.metrics = true }},
	{"LLAMA_ARG_ENDPOINT_SLOTS off", nil, map[string]string{"LLAMA_ARG_ENDPOINT_SLOTS": "disabled"}, func(o *options) { o.slots = false }},
	{"a flag overrides its environment form", []string{"--port", "7000", "-c", "128"},
		map[string]string{"LLAMA_ARG_PORT": "9001", "LLAMA_ARG_CTX_SIZE": "1024"}, func(o *options) { o.port, o.ctxSize = 7000, 128 }},
	{"an empty environment value is unset", nil, map[string]string{"LLAMA_ARG_PORT": ""}, func(o *options) {}},
}

func TestParseOptionsAcceptsLlamaServerSpellings(t *testing.T) {
	for _, tc := range acceptedCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOptions(tc.args, envFunc(tc.env), builds[defaultBuild])
			if err != nil {
				t.Fatalf("parseOptions(%q) failed: %v", tc.args, err)
			}
			want := defaultOptions(builds[defaultBuild])
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parseOptions(%q)\n got %+v\nwant %+v", tc.args, got, want)
			}
		})
	}
}

// Every spelling in the flag table is exercised above, so a new flag
// without a test fails here.
func TestEveryFlagSpellingIsTested(t *testing.T) {
	used := map[string]bool{}
	for _, tc := range acceptedCases {
		for _, a := range tc.args {
			name, _, _ := strings.Cut(a, "=")
			used[name] = true
		}
	}
	for _, d := range flagDefs {
		for _, n := range d.names {
			if !used[n] {
				t.Errorf("flag %s has no case in acceptedCases", n)
			}
		}
	}
}

func TestParseOptionsRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"--foo"}, nil, "error: invalid argument: --foo"},
		{"unknown flag with a value", []string{"--foo=1"}, nil, "error: invalid argument: --foo=1"},
		{"misspelt flag", []string{"--n-gpu-layer", "1"}, nil, "error: invalid argument: --n-gpu-layer"},
		{"help is not a server flag here", []string{"-h"}, nil, "error: invalid argument: -h"},
		{"stray positional argument", []string{"-m", "a.gguf", "b.gguf"}, nil, "error: invalid argument: b.gguf"},
		{"missing value", []string{"--port"}, nil, `error while handling argument "--port": expected value for argument`},
		{"missing model", []string{"--metrics", "-m"}, nil, `error while handling argument "-m": expected value for argument`},
		{"port not a number", []string{"--port", "http"}, nil, `error while handling argument "--port": invalid integer "http"`},
		{"port out of range", []string{"--port=70000"}, nil, `error while handling argument "--port": port 70000 is out of range 0-65535`},
		{"negative context", []string{"-c", "-1"}, nil, `error while handling argument "-c": context size -1 is negative`},
		{"parallel not a number", []string{"-np", "four"}, nil, `error while handling argument "-np": invalid integer "four"`},
		{"gpu layers not a number", []string{"-ngl", "many"}, nil, `error while handling argument "-ngl": invalid value "many": want a number, "auto" or "all"`},
		{"flash attention value", []string{"-fa", "yes"}, nil, `error while handling argument "-fa": unknown value "yes": want on, off, auto`},
		{"flash attention without a value", []string{"--flash-attn"}, nil, `error while handling argument "--flash-attn": expected value for argument`},
		{"fit value", []string{"--fit", "auto"}, nil, `error while handling argument "--fit": unknown value "auto": want on, off`},
		{"tensor split value", []string{"-ts", "1,x"}, nil, `error while handling argument "-ts": invalid tensor split "1,x": "x" is not a number`},
		{"temperature value", []string{"--temp", "hot"}, nil, `error while handling argument "--temp": invalid number "hot"`},
		{"switch given a value", []string{"--metrics=1"}, nil, `error while handling argument "--metrics": unexpected value "1": the argument takes no value`},
		{"environment value not a number", nil, map[string]string{"LLAMA_ARG_PORT": "abc"},
			`error while handling environment variable "LLAMA_ARG_PORT": invalid integer "abc"`},
		{"environment switch not a boolean", nil, map[string]string{"LLAMA_ARG_ENDPOINT_METRICS": "yes"},
			`error while handling environment variable "LLAMA_ARG_ENDPOINT_METRICS": invalid boolean "yes": want 1, true, on, enabled, 0, false, off or disabled`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOptions(tc.args, envFunc(tc.env), builds[defaultBuild])
			if err == nil {
				t.Fatalf("parseOptions(%q) succeeded, want %q", tc.args, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("parseOptions(%q) error\n got %s\nwant %s", tc.args, err, tc.want)
			}
		})
	}
}

func TestSlotCount(t *testing.T) {
	for _, tc := range []struct{ parallel, want int }{{-1, 1}, {0, 1}, {1, 1}, {4, 4}} {
		if got := (options{parallel: tc.parallel}).slotCount(); got != tc.want {
			t.Errorf("-np %d gives %d slots, want %d", tc.parallel, got, tc.want)
		}
	}
}
