package vllm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk"
	"github.com/llorch/llorch/providers/sdk/stage"
)

// Version is this provider's version, which `llorch init` records.
const Version = "0.1.0"

// New returns the vLLM provider.
func New() providers.Provider { return &provider{binary: "vllm"} }

type provider struct {
	mu     sync.Mutex
	binary string // from the provider block; a path or a name on PATH
	// configDir is where relative file: refs resolve
	// (ConfigureRequest.ConfigDir); "" from an older llorch, which makes
	// them an error.
	configDir string
}

var (
	refPath    = cty.GetAttrPath("model").GetAttr("ref")
	shaPath    = cty.GetAttrPath("model").GetAttr("sha256")
	tpPath     = cty.GetAttrPath("tensor_parallel_size")
	memPath    = cty.GetAttrPath("gpu_memory_utilization")
	apiKeyPath = cty.GetAttrPath("api_key")
)

func (p *provider) GetSchema(context.Context) (*providers.Schema, providers.Diagnostics) {
	// Every pool attribute reaches vLLM's arguments or environment, which
	// only change when the engine restarts: all of them force replacement.
	return &providers.Schema{
		Version: Version,
		Provider: &providers.Block{Attributes: map[string]*providers.Attribute{
			"binary": sdk.Attr(cty.String, `The vllm executable: a path, or a name looked up on PATH (default "vllm").`),
		}},
		Pool: &providers.Block{Attributes: map[string]*providers.Attribute{
			"tensor_parallel_size": sdk.Attr(cty.Number,
				"Number of GPUs to split the model across (--tensor-parallel-size).", sdk.ForcesReplacement),
			"gpu_memory_utilization": sdk.Attr(cty.Number,
				"Fraction of each GPU's memory vLLM may use, above 0 and at most 1 (--gpu-memory-utilization).", sdk.ForcesReplacement),
			"api_key": sdk.Attr(cty.String,
				"Key clients must send as a bearer token. It reaches vLLM as VLLM_API_KEY, never on the command line.",
				sdk.Sensitive, sdk.ForcesReplacement),
		}},
	}, nil
}

func (p *provider) Configure(_ context.Context, req providers.ConfigureRequest) providers.Diagnostics {
	p.mu.Lock()
	p.configDir = req.ConfigDir
	p.mu.Unlock()
	binary, ok := sdk.GetString(req.Config, "binary")
	if !ok {
		return nil
	}
	if binary == "" {
		return providers.Diagnostics{providers.AttributeErrorf(cty.GetAttrPath("binary"), "Invalid binary",
			`binary is empty; set it to the vllm executable's path, or remove it to look for "vllm" on PATH.`)}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.binary = binary
	return nil
}

func (p *provider) ValidatePool(_ context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
	_, diags := p.parsePool(req.Pool, req.Config)
	return diags
}

func (p *provider) PlanPool(ctx context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
	if _, diags := p.parsePool(req.Pool, req.Config); diags.HasErrors() {
		return nil, diags
	}
	notReady := func(err error) (*providers.PlannedPool, providers.Diagnostics) {
		return &providers.PlannedPool{}, providers.Diagnostics{providers.Warnf("vLLM not ready",
			"%v. Apply will fail unless this is fixed first.", err)}
	}
	path, err := p.find()
	if err != nil {
		return notReady(err)
	}
	sum, err := sdk.FileSHA256(path)
	if err != nil {
		return notReady(err)
	}
	planned := &providers.PlannedPool{BinarySHA256: sum}
	// The configuration may come from a pull request: the executable runs
	// while planning only when the lock file pins it.
	if sum != req.PinnedBinarySHA256 {
		return planned, nil
	}
	version, err := p.version(ctx, path)
	if err != nil {
		return notReady(err)
	}
	planned.EngineVersion = "vllm-" + version
	return planned, nil
}

func (p *provider) Ensure(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	progress := req.Progress
	if progress == nil {
		progress = func(providers.Event) {}
	}
	s, diags := p.parsePool(req.Pool, req.Config)
	if diags.HasErrors() {
		return nil, diags
	}
	bin, version, err := p.locate(ctx)
	if err != nil {
		return nil, append(diags, providers.Errorf("vLLM not ready", "%v.", err))
	}
	sum, err := sdk.FileSHA256(bin)
	if err != nil {
		return nil, append(diags, providers.Errorf("vLLM not ready", "%v.", err))
	}
	progress(providers.Event{Stage: "locate", Message: fmt.Sprintf("vLLM %s at %s", version, bin)})

	if s.dir != "" {
		if fi, err := os.Stat(s.dir); err != nil || !fi.IsDir() {
			return nil, append(diags, providers.AttributeErrorf(refPath, "Model directory not found",
				"%s is not a directory; vLLM loads a local model from a directory holding its config.json and weights.", s.dir))
		}
		progress(providers.Event{Stage: "model", Message: "local model directory " + s.dir})
	} else {
		progress(providers.Event{Stage: "model", Message: s.model + " will be downloaded by vLLM when it starts"})
	}

	pool := req.Pool
	host := pool.Host
	if host == "" {
		host = "127.0.0.1" // vLLM's own default is every interface
	}
	// llorch puts each replica's port where the placeholder is.
	args := []string{"serve", s.model, "--host", host, "--port", providers.PortPlaceholder}
	if pool.Ctx > 0 {
		args = append(args, "--max-model-len", strconv.Itoa(pool.Ctx))
	}
	if s.tp > 0 {
		args = append(args, "--tensor-parallel-size", strconv.Itoa(s.tp))
	}
	if s.mem > 0 {
		args = append(args, "--gpu-memory-utilization", strconv.FormatFloat(s.mem, 'g', -1, 64))
	}
	if s.revision != "" {
		args = append(args, "--revision", s.revision)
	}
	args = append(args, pool.Flags...)

	env := make(map[string]string, len(pool.Env)+1)
	for k, v := range pool.Env {
		env[k] = v
	}
	if pool.Devices != nil {
		env["CUDA_VISIBLE_DEVICES"] = pool.DeviceMask() // "" hides every GPU
	}
	pe := &providers.PreparedEngine{
		BinaryPath:       bin,
		BinarySHA256:     sum,
		Args:             args,
		Env:              env,
		Host:             host,
		Port:             pool.Port,
		ModelPath:        s.dir,
		EngineVersion:    "vllm-" + version,
		ProvisioningMode: "binary",
		PoolID:           pool.ID,
		DeviceMask:       pool.DeviceMask(),
		HealthPath:       "/health",
	}
	pe.Protocol = engineProtocol(s.model, servedName(s.model, pool.Flags))
	if s.apiKey != "" {
		pe.SecretEnv = map[string]string{"VLLM_API_KEY": s.apiKey}
		pe.ProbeToken = s.apiKey
	}
	return pe, diags
}

// engineProtocol is how vLLM's OpenAI-compatible server answers, so that
// llorch can tell when it is ready, that it serves this pool's model, and
// when a drained replica has finished its requests:
//   - it listens only once the model is loaded, and /health answers 200;
//   - /v1/models lists the served model, whose root is the model it loaded
//     (the directory or Hugging Face repository given to vllm serve);
//   - /metrics has the gauges vllm:num_requests_running and
//     vllm:num_requests_waiting, labelled by model_name;
//   - /v1/completions is OpenAI's completion endpoint;
//   - SIGTERM starts uvicorn's graceful shutdown; llorch sends SIGKILL
//     after the pool's drain kill_timeout;
//   - an unknown flag or a model it cannot find are configuration errors
//     that restarting cannot fix.
func engineProtocol(model, served string) *providers.EngineProtocol {
	return &providers.EngineProtocol{
		Readiness: providers.Readiness{Ready: []int{200}},
		Identity:  &providers.IdentityProbe{Path: "/v1/models", Field: "data.0.root", Expect: model},
		InFlight: []providers.InFlightProbe{
			{Path: "/metrics", Gauges: []string{"vllm:num_requests_running", "vllm:num_requests_waiting"}},
		},
		Completion: &providers.CompletionProbe{Path: "/v1/completions", PromptField: "prompt", MaxTokensField: "max_tokens",
			Fixed: map[string]string{"model": served}, TextField: "choices.0.text"},
		Stop: providers.StopBehaviour{Signal: "SIGTERM"},
		// What vLLM logs when restarting cannot help (argparse, and
		// transformers' answer to a model it cannot find); llorch knows
		// "out of memory" and "address already in use" itself.
		LogCauses: []providers.LogCause{
			{Cause: "bad_argument", Contains: []string{"error: unrecognized arguments", "error: argument "}},
			{Cause: "model_load_failed", Contains: []string{
				"does not appear to have a file named config.json", "is not a valid model identifier",
			}},
		},
	}
}

// servedName is the model name clients (and the smoke check) send: the
// pool's --served-model-name flag, or the model itself.
func servedName(model string, flags []string) string {
	for i, f := range flags {
		if v, ok := strings.CutPrefix(f, "--served-model-name="); ok {
			return v
		}
		if f == "--served-model-name" && i+1 < len(flags) {
			return flags[i+1]
		}
	}
	return model
}

// Cleanup has nothing to do: vLLM's download cache is shared by every pool.
func (p *provider) Cleanup(context.Context, providers.CleanupRequest) providers.Diagnostics {
	return nil
}

func (p *provider) Close() error { return nil }

// locate finds the vllm executable and asks it for its version.
func (p *provider) locate(ctx context.Context) (path, version string, err error) {
	if path, err = p.find(); err != nil {
		return "", "", err
	}
	version, err = p.version(ctx, path)
	return path, version, err
}

// find looks for the vllm executable.
func (p *provider) find() (string, error) {
	p.mu.Lock()
	binary := p.binary
	p.mu.Unlock()
	path, err := exec.LookPath(binary)
	switch {
	case err == nil:
		return path, nil
	case !strings.ContainsRune(binary, '/'):
		return "", fmt.Errorf("vllm executable %q is not on PATH; install vLLM (pip install vllm) or set binary in the provider \"vllm\" block to its path", binary)
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("vllm executable %s does not exist; fix binary in the provider \"vllm\" block", binary)
	default:
		return "", fmt.Errorf("vllm executable %s cannot be run (%v); make it executable with chmod +x", binary, err)
	}
}

// version runs path --version.
func (p *provider) version(ctx context.Context, path string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("`%s --version` failed: %v: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	// vLLM may log before printing the version: the version is the last line.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	version := strings.TrimSpace(lines[len(lines)-1])
	if version == "" || version[0] < '0' || version[0] > '9' {
		return "", fmt.Errorf("`%s --version` printed %q, which does not end with a version", path, stdout.String())
	}
	return version, nil
}

// settings is a pool as vLLM sees it.
type settings struct {
	model, revision, dir string // dir is set for local models
	tp                   int
	mem                  float64
	apiKey               string
}

// poolOwned maps flags that llorch sets to the setting to use instead.
var poolOwned = map[string]string{
	"--host": "host", "--port": "port", "--model": "model { ref }", "--revision": "model { ref } (hf:ORG/REPO@REVISION)",
	"--max-model-len": "ctx", "--tensor-parallel-size": "tensor_parallel_size", "--gpu-memory-utilization": "gpu_memory_utilization",
}

func (p *provider) parsePool(pool providers.PoolSpec, cfg cty.Value) (settings, providers.Diagnostics) {
	p.mu.Lock()
	configDir := p.configDir
	p.mu.Unlock()
	var s settings
	var diags providers.Diagnostics
	ref := pool.Model.Ref
	switch {
	case strings.HasPrefix(ref, "hf:"):
		s.model, s.revision, _ = strings.Cut(strings.TrimPrefix(ref, "hf:"), "@")
		if org, repo, ok := strings.Cut(s.model, "/"); !ok || org == "" || repo == "" || strings.Contains(repo, "/") {
			diags = append(diags, providers.AttributeErrorf(refPath, "Invalid model reference",
				"%q is not a Hugging Face repository: vLLM loads whole repositories, so write hf:ORG/REPO, optionally with @REVISION.", ref))
		}
	case strings.HasPrefix(ref, "file:"):
		// The SDK parses file: refs as every provider does: a relative
		// path is relative to the configuration directory. vLLM loads
		// the directory itself, so there is nothing to stage.
		if configDir == "" && !strings.HasPrefix(strings.TrimPrefix(ref, "file:"), "/") {
			diags = append(diags, providers.AttributeErrorf(refPath, "Invalid model reference",
				"%q is not an absolute path, and this llorch does not say which directory it is relative to; write file:/path/to/model-directory.", ref))
			break
		}
		m, err := stage.ParseRef(ref, configDir)
		if err != nil {
			diags = append(diags, providers.AttributeErrorf(refPath, "Invalid model reference", "%s.", err))
			break
		}
		s.dir, s.model = m.Path, m.Path
	default:
		diags = append(diags, providers.AttributeErrorf(refPath, "Unsupported model reference",
			"vLLM loads a Hugging Face repository (hf:ORG/REPO) or a local model directory (file:/path/to/dir); %q is neither.", ref))
	}
	if pool.Model.SHA256 != "" {
		diags = append(diags, providers.AttributeErrorf(shaPath, "Unsupported model checksum",
			"A vLLM model is a directory or a repository, not one file, so there is nothing for sha256 to check; remove it."))
	}

	for i, f := range pool.Flags {
		name, _, _ := strings.Cut(f, "=")
		at := cty.GetAttrPath("flags").IndexInt(i)
		if name == "--api-key" {
			diags = append(diags, providers.AttributeErrorf(at, "Secret in flags",
				"--api-key on the command line is visible to every local user; set api_key in the vllm block instead, which reaches vLLM as VLLM_API_KEY."))
		} else if setting, ok := poolOwned[name]; ok {
			diags = append(diags, providers.AttributeErrorf(at, "Flag set by llorch",
				"llorch sets %s from the pool's %s; remove it from flags.", name, setting))
		}
	}

	tp, set, err := sdk.GetInt(cfg, "tensor_parallel_size")
	switch {
	case err != nil:
		diags = append(diags, providers.AttributeErrorf(tpPath, "Invalid tensor_parallel_size", "%s.", err))
	case set && tp < 1:
		diags = append(diags, providers.AttributeErrorf(tpPath, "Invalid tensor_parallel_size",
			"tensor_parallel_size must be at least 1, not %d.", tp))
	case set && len(pool.Devices) > 0 && tp > len(pool.Devices):
		diags = append(diags, providers.AttributeErrorf(tpPath, "Not enough devices",
			"tensor_parallel_size %d needs %d GPUs, but devices lists %d; list more devices or lower it.", tp, tp, len(pool.Devices)))
	}
	s.tp = tp

	if mem, set := sdk.GetFloat(cfg, "gpu_memory_utilization"); set {
		if mem <= 0 || mem > 1 {
			diags = append(diags, providers.AttributeErrorf(memPath, "Invalid gpu_memory_utilization",
				"gpu_memory_utilization is a fraction above 0 and at most 1, like 0.9; %g is not.", mem))
		}
		s.mem = mem
	}
	if key, set := sdk.GetString(cfg, "api_key"); set {
		if key == "" {
			diags = append(diags, providers.AttributeErrorf(apiKeyPath, "Invalid api_key",
				"api_key is empty; set a key, or remove api_key to serve without one."))
		}
		s.apiKey = key
	}
	return s, diags
}
