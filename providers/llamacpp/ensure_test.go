package llamacpp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/sdktest"
)

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestEnsureBinaryModePreparesTheEngine(t *testing.T) {
	bin := t.TempDir()
	server, _ := fakeServer(t, bin, "llama-server", "version: 0.2.0-dev (build 10573, commit d775b8967)")
	p := newTestProvider(t, testEnv(t, bin), "")
	model := tinyLlama(t)

	pool := testPool("file:" + model)
	pool.Model.SHA256 = strings.ToUpper(sha256Hex(tinyLlamaBytes(t)))
	pool.Ctx = 256
	pool.Devices = []int{1, 0}
	pool.Flags = []string{"-ngl", "33", "--jinja"}
	pool.Env = map[string]string{"LLAMA_ARG_BATCH": "256"}
	var ev sdktest.Events
	pe, diags := p.Ensure(context.Background(), providers.EnsureRequest{
		Pool: pool, Config: poolBlock(t, "threads = 4\napi_key = \"s3cret-key\""), Progress: ev.Add})
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	want := &providers.PreparedEngine{
		BinaryPath: server,
		Args: []string{"-m", model, "--host", "127.0.0.1", "--port", "8080", "-c", "256", "--threads", "4", "--metrics",
			"--n-gpu-layers", "33", "--jinja"},
		Env:              map[string]string{"LLAMA_ARG_BATCH": "256", "CUDA_VISIBLE_DEVICES": "1,0"},
		SecretEnv:        map[string]string{"LLAMA_API_KEY": "s3cret-key"},
		ProbeToken:       "s3cret-key",
		Host:             "127.0.0.1",
		Port:             8080,
		ModelPath:        model,
		ModelSHA256:      sha256Hex(tinyLlamaBytes(t)),
		BinarySHA256:     sha256Hex(readFile(t, server)),
		EngineVersion:    "llamacpp-b10573-d775b8967",
		ProvisioningMode: "binary",
		PoolID:           "chat",
		DeviceMask:       "1,0",
		HealthPath:       "/health",
		Protocol:         EngineProtocol(model),
	}
	if !reflect.DeepEqual(pe, want) {
		t.Errorf("PreparedEngine =\n %+v\nwant\n %+v", *pe, *want)
	}
	for _, a := range append(pe.Args, values(pe.Env)...) {
		if strings.Contains(a, "s3cret") {
			t.Errorf("the api key leaked into args or env: %q", a)
		}
	}
	if st := ev.Stages(); st["engine"] != 1 || st["inspect"] != 1 || st["verify"] == 0 {
		t.Errorf("progress stages = %v, want engine, inspect and verify", st)
	}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestEnsureCPUOnlyPoolHidesEveryGPU(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	pool := testPool("file:" + tinyLlama(t))
	pool.Devices = []int{}
	pe, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")})
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if v, ok := pe.Env["CUDA_VISIBLE_DEVICES"]; !ok || v != "" {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q (set %v), want set and empty", v, ok)
	}
	if got := strings.Join(pe.Args, " "); !strings.Contains(got, "--n-gpu-layers 0") {
		t.Errorf("args %q lack --n-gpu-layers 0", got)
	}
	if pe.SecretEnv != nil || pe.ProbeToken != "" {
		t.Errorf("no api_key, yet SecretEnv = %v, ProbeToken = %q", pe.SecretEnv, pe.ProbeToken)
	}
}

func TestEnsureRefusesAnInvalidPool(t *testing.T) {
	bin := t.TempDir()
	_, counter := fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	pool := testPool("file:" + tinyLlama(t))
	pool.Flags = []string{"--port", "1234"}
	_, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")})
	oneDiag(t, diags, providers.Error, `flags[0] is "--port"`)
	if n := runs(t, counter); n != 0 {
		t.Errorf("an invalid pool still ran the binary %d time(s)", n)
	}
}

func TestEnsureLocalModels(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	models := t.TempDir()
	good := writeFile(t, models, "good.gguf", smallGGUF("qwen2", 32768), 0o644)
	goodSum := sha256Hex(smallGGUF("qwen2", 32768))
	notGGUF := writeFile(t, models, "model.safetensors", []byte("{\"__metadata__\":{}}"), 0o644)
	v1 := writeFile(t, models, "old.gguf", []byte("GGUF\x01\x00\x00\x00\x00\x00\x00\x00"), 0o644)
	truncated := writeFile(t, models, "cut.gguf", smallGGUF("llama", 4096)[:30], 0o644)

	tests := []struct {
		name        string
		ref, sha    string
		wantSummary string
		wantPath    string
		want        []string
	}{
		{name: "a missing file", ref: "file:" + filepath.Join(models, "nope.gguf"),
			wantSummary: "Model File Not Found", wantPath: "model.ref",
			want: []string{"model file " + filepath.Join(models, "nope.gguf") + " not found", "check the path"}},
		{name: "a directory", ref: "file:" + models,
			wantSummary: "Model File Not Found", wantPath: "model.ref", want: []string{"which is not a regular file"}},
		{name: "a file that is not GGUF", ref: "file:" + notGGUF,
			wantSummary: "Model Is Not GGUF", wantPath: "model.ref",
			want: []string{notGGUF + `: not a GGUF file: it starts with "{\"__", not "GGUF"`, "llama-server loads only GGUF models"}},
		{name: "GGUF version 1", ref: "file:" + v1,
			wantSummary: "Model Is Not GGUF", wantPath: "model.ref", want: []string{"version 1 (llama.cpp reads versions 2 and 3)"}},
		{name: "a truncated GGUF", ref: "file:" + truncated,
			wantSummary: "Model Is Damaged", wantPath: "model.ref", want: []string{"truncated GGUF file", "download or copy it again"}},
		{name: "a sha256 mismatch", ref: "file:" + good, sha: strings.Repeat("0", 64),
			wantSummary: "Model Checksum Mismatch", wantPath: "model.sha256",
			want: []string{"sha256 mismatch for model file " + good, "expected " + strings.Repeat("0", 64), "got " + goodSum}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, testEnv(t, bin), "")
			pool := testPool(tc.ref)
			pool.Model.SHA256 = tc.sha
			_, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")})
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if d.Summary != tc.wantSummary || pathString(d.Attribute) != tc.wantPath {
				t.Errorf("summary %q at %q, want %q at %q", d.Summary, pathString(d.Attribute), tc.wantSummary, tc.wantPath)
			}
		})
	}
	// The user's files are never removed, even when they fail verification.
	for _, f := range []string{good, notGGUF, v1, truncated} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s was touched: %v", f, err)
		}
	}
}

func TestEnsureHashesALocalModelOnce(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	model := writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 2048), 0o644)
	pool := testPool("file:" + model)

	var first, second sdktest.Events
	pe, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, ""), Progress: first.Add})
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if pe.ModelSHA256 != sha256Hex(smallGGUF("llama", 2048)) {
		t.Errorf("ModelSHA256 = %q", pe.ModelSHA256)
	}
	pool.Model.SHA256 = pe.ModelSHA256
	if _, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, ""), Progress: second.Add}); len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if first.Stages()["verify"] == 0 {
		t.Error("the first Ensure did not hash the model")
	}
	if n := second.Stages()["verify"]; n != 0 {
		t.Errorf("the second Ensure hashed the model again (%d verify events)", n)
	}

	// The digest is on disk for other processes, keyed by size and mtime.
	cfg, _ := p.config()
	data, err := os.ReadFile(filepath.Join(cfg.CacheDir, "digests.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Entries map[string]struct {
			Size  int64  `json:"size"`
			Value string `json:"value"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if e := f.Entries[model]; e.Value != pe.ModelSHA256 || e.Size != int64(len(smallGGUF("llama", 2048))) {
		t.Errorf("digests.json entry = %+v", e)
	}
}

func TestEnsureWarnsAboutAContextAboveTheTrainedLength(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	pool := testPool("file:" + tinyLlama(t))
	pool.Ctx = 4096
	pe, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")})
	d := oneDiag(t, diags, providers.Warning, "ctx = 4096 is above the context length this llama model was trained with (256 tokens)")
	if pathString(d.Attribute) != "ctx" || pe == nil {
		t.Errorf("warning at %q, engine %v", pathString(d.Attribute), pe)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
