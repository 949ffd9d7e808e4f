package fakeengine

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// defaultModelPath is llama.cpp's DEFAULT_MODEL_PATH: without -m the real
// server tries this file and aborts when it is missing, so the fake does too.
const defaultModelPath = "models/7B/ggml-model-f16.gguf"

// options are the llama-server settings the fake understands. Settings it
// accepts but has no use for are still parsed and validated, so a bad value
// fails here as it would in the real server.
type options struct {
	model       string
	host        string
	port        int
	ctxSize     int
	threads     int
	parallel    int
	alias       string
	gpuLayers   string // a number, "auto" or "all"
	tensorSplit string
	devices     string
	apiKeys     []string
	metrics     bool
	slots       bool
	noWebUI     bool
	version     bool
	listDevices bool
	flashAttn   string
	batchSize   int
	ubatchSize  int
	mlock       bool
	noMmap      bool
	jinja       bool
	fit         string
	logDisable  bool
	verbose     bool
	timeout     int
	threadsHTTP int
	contBatch   bool
	temp        float64
	nPredict    int
	seed        int
}

func defaultOptions(b build) options {
	fit := "on"
	if !b.hasFit {
		fit = ""
	}
	flashAttn := "auto"
	if !b.flashAttnValue {
		flashAttn = "off"
	}
	return options{
		model:       defaultModelPath,
		host:        "127.0.0.1",
		port:        8080,
		ctxSize:     4096,
		threads:     -1,
		parallel:    -1,
		gpuLayers:   "auto",
		slots:       b.slotsByDefault,
		flashAttn:   flashAttn,
		batchSize:   2048,
		ubatchSize:  512,
		fit:         fit,
		timeout:     600,
		threadsHTTP: -1,
		contBatch:   true,
		temp:        0.8,
		nPredict:    -1,
		seed:        -1,
	}
}

// slotCount is the number of slots the server runs; -np -1 (auto) and other
// values below one mean a single slot.
func (o options) slotCount() int {
	return max(o.parallel, 1)
}

// modelID is what /v1/models and the completion answers call the model.
func (o options) modelID() string {
	if o.alias != "" {
		return o.alias
	}
	return o.model
}

// flagDef is one llama-server argument. Exactly one of set and setBool is
// non-nil: set for arguments that take a value, setBool for switches.
type flagDef struct {
	names   []string
	env     string
	set     func(o *options, v string) error
	setBool func(o *options, on bool)
	// in, when set, says which builds have the argument.
	in func(b build) bool
}

var flagDefs = []flagDef{
	{names: []string{"-m", "--model"}, env: "LLAMA_ARG_MODEL", set: func(o *options, v string) error { o.model = v; return nil }},
	{names: []string{"--host"}, env: "LLAMA_ARG_HOST", set: func(o *options, v string) error { o.host = v; return nil }},
	{names: []string{"--port"}, env: "LLAMA_ARG_PORT", set: func(o *options, v string) error {
		n, err := parseInt(v)
		if err != nil {
			return err
		}
		if n < 0 || n > 65535 {
			return fmt.Errorf("port %d is out of range 0-65535", n)
		}
		o.port = n
		return nil
	}},
	{names: []string{"-c", "--ctx-size"}, env: "LLAMA_ARG_CTX_SIZE", set: func(o *options, v string) error {
		n, err := parseInt(v)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("context size %d is negative", n)
		}
		if n == 0 { // 0 means "from the model"; the fake has no trained context to read
			n = 4096
		}
		o.ctxSize = n
		return nil
	}},
	{names: []string{"-t", "--threads"}, env: "LLAMA_ARG_THREADS", set: intSetter(func(o *options) *int { return &o.threads })},
	{names: []string{"-np", "--parallel"}, env: "LLAMA_ARG_N_PARALLEL", set: intSetter(func(o *options) *int { return &o.parallel })},
	{names: []string{"-a", "--alias"}, env: "LLAMA_ARG_ALIAS", set: func(o *options, v string) error { o.alias = v; return nil }},
	{names: []string{"-ngl", "--gpu-layers", "--n-gpu-layers"}, env: "LLAMA_ARG_N_GPU_LAYERS", set: func(o *options, v string) error {
		if v != "auto" && v != "all" {
			if _, err := strconv.Atoi(v); err != nil {
				return fmt.Errorf("invalid value %q: want a number, \"auto\" or \"all\"", v)
			}
		}
		o.gpuLayers = v
		return nil
	}},
	{names: []string{"-ts", "--tensor-split"}, env: "LLAMA_ARG_TENSOR_SPLIT", set: func(o *options, v string) error {
		for part := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == '/' }) {
			if _, err := strconv.ParseFloat(part, 64); err != nil {
				return fmt.Errorf("invalid tensor split %q: %q is not a number", v, part)
			}
		}
		o.tensorSplit = v
		return nil
	}},
	{names: []string{"-dev", "--device"}, env: "LLAMA_ARG_DEVICE", set: func(o *options, v string) error { o.devices = v; return nil }},
	// The real server takes its key from LLAMA_API_KEY, not LLAMA_ARG_API_KEY.
	{names: []string{"--api-key"}, env: "LLAMA_API_KEY", set: func(o *options, v string) error {
		o.apiKeys = nil
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				o.apiKeys = append(o.apiKeys, k)
			}
		}
		return nil
	}},
	{names: []string{"--metrics"}, env: "LLAMA_ARG_ENDPOINT_METRICS", setBool: func(o *options, on bool) { o.metrics = on }},
	{names: []string{"--slots"}, env: "LLAMA_ARG_ENDPOINT_SLOTS", setBool: func(o *options, on bool) { o.slots = on }},
	{names: []string{"--no-slots"}, setBool: func(o *options, on bool) { o.slots = !on }},
	{names: []string{"--no-webui"}, env: "LLAMA_ARG_NO_WEBUI", setBool: func(o *options, on bool) { o.noWebUI = on }},
	{names: []string{"--version"}, setBool: func(o *options, on bool) { o.version = on }},
	{names: []string{"--list-devices"}, setBool: func(o *options, on bool) { o.listDevices = on }},
	{names: []string{"-fa", "--flash-attn"}, env: "LLAMA_ARG_FLASH_ATTN", set: enumSetter(func(o *options) *string { return &o.flashAttn }, "on", "off", "auto"), in: func(b build) bool { return b.flashAttnValue }},
	{names: []string{"-fa", "--flash-attn"}, env: "LLAMA_ARG_FLASH_ATTN", setBool: func(o *options, on bool) { o.flashAttn = choose(on, "on", "off") }, in: func(b build) bool { return !b.flashAttnValue }},
	{names: []string{"-b", "--batch-size"}, env: "LLAMA_ARG_BATCH", set: intSetter(func(o *options) *int { return &o.batchSize })},
	{names: []string{"-ub", "--ubatch-size"}, env: "LLAMA_ARG_UBATCH", set: intSetter(func(o *options) *int { return &o.ubatchSize })},
	{names: []string{"--mlock"}, env: "LLAMA_ARG_MLOCK", setBool: func(o *options, on bool) { o.mlock = on }},
	{names: []string{"--no-mmap"}, env: "LLAMA_ARG_NO_MMAP", setBool: func(o *options, on bool) { o.noMmap = on }},
	{names: []string{"--jinja"}, env: "LLAMA_ARG_JINJA", setBool: func(o *options, on bool) { o.jinja = on }},
	{names: []string{"-fit", "--fit"}, env: "LLAMA_ARG_FIT", set: enumSetter(func(o *options) *string { return &o.fit }, "on", "off"), in: func(b build) bool { return b.hasFit }},
	{names: []string{"--log-disable"}, setBool: func(o *options, on bool) { o.logDisable = on }},
	{names: []string{"-v", "--verbose"}, setBool: func(o *options, on bool) { o.verbose = on }},
	{names: []string{"--timeout"}, env: "LLAMA_ARG_TIMEOUT", set: intSetter(func(o *options) *int { return &o.timeout })},
	{names: []string{"--threads-http"}, env: "LLAMA_ARG_THREADS_HTTP", set: intSetter(func(o *options) *int { return &o.threadsHTTP })},
	{names: []string{"--cont-batching"}, env: "LLAMA_ARG_CONT_BATCHING", setBool: func(o *options, on bool) { o.contBatch = on }},
	{names: []string{"--no-cont-batching"}, setBool: func(o *options, on bool) { o.contBatch = !on }},
	{names: []string{"--temp"}, set: func(o *options, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", v)
		}
		o.temp = f
		return nil
	}},
	{names: []string{"-n", "--n-predict"}, env: "LLAMA_ARG_N_PREDICT", set: intSetter(func(o *options) *int { return &o.nPredict })},
	{names: []string{"--seed"}, set: intSetter(func(o *options) *int { return &o.seed })},
}

func intSetter(field func(o *options) *int) func(*options, string) error {
	return func(o *options, v string) error {
		n, err := parseInt(v)
		if err != nil {
			return err
		}
		*field(o) = n
		return nil
	}
}

func enumSetter(field func(o *options) *string, allowed ...string) func(*options, string) error {
	return func(o *options, v string) error {
		for _, a := range allowed {
			if v == a {
				*field(o) = v
				return nil
			}
		}
		return fmt.Errorf("unknown value %q: want %s", v, strings.Join(allowed, ", "))
	}
}

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("invalid integer %q", v)
	}
	return n, nil
}

// parseBoolEnv reads a switch's environment form the way llama.cpp does.
func parseBoolEnv(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "on", "enabled":
		return true, nil
	case "0", "false", "off", "disabled":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q: want 1, true, on, enabled, 0, false, off or disabled", v)
}

func lookupFlag(name string, b build) *flagDef {
	for i := range flagDefs {
		if in := flagDefs[i].in; in != nil && !in(b) {
			continue
		}
		for _, n := range flagDefs[i].names {
			if n == name {
				return &flagDefs[i]
			}
		}
	}
	return nil
}

// parseOptions reads llama-server arguments and their environment forms
// as build b has them. As in llama.cpp, the environment is applied first
// and arguments override it. Error texts copy the real server's where it
// has one.
func parseOptions(args []string, env func(string) string, b build) (options, error) {
	o := defaultOptions(b)
	for i := range flagDefs {
		d := &flagDefs[i]
		if d.env == "" || (d.in != nil && !d.in(b)) {
			continue
		}
		v := env(d.env)
		if v == "" {
			continue
		}
		var err error
		if d.setBool != nil {
			var on bool
			if on, err = parseBoolEnv(v); err == nil {
				d.setBool(&o, on)
			}
		} else {
			err = d.set(&o, v)
		}
		if err != nil {
			return o, fmt.Errorf("error while handling environment variable %q: %w", d.env, err)
		}
	}

	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, inline := arg, "", false
		if strings.HasPrefix(arg, "-") {
			name, value, inline = strings.Cut(arg, "=")
		}
		d := lookupFlag(name, b)
		if d == nil {
			return o, fmt.Errorf("error: invalid argument: %s", arg)
		}
		if d.setBool != nil {
			if inline {
				return o, fmt.Errorf("error while handling argument %q: unexpected value %q: the argument takes no value", name, value)
			}
			d.setBool(&o, true)
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				return o, fmt.Errorf("error while handling argument %q: %w", name, errExpectedValue)
			}
			i++
			value = args[i]
		}
		if err := d.set(&o, value); err != nil {
			return o, fmt.Errorf("error while handling argument %q: %w", name, err)
		}
	}
	return o, nil
}

var errExpectedValue = errors.New("expected value for argument")
