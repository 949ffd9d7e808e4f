package discovery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/examples/provider-vllm/vllm"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/plugin"
	"github.com/llorch/llorch/providers/sdk"
)

// The test binary doubles as every plugin the tests start: testscript.Main
// installs a copy per command on PATH and dispatches on argv[0], so real
// processes take the real plugin path with nothing built at test time.
func TestMain(m *testing.M) {
	// Plugin processes are this test binary. Built with -race, each would
	// sleep a second on exit (GORACE atexit_sleep_ms) before its host sees it
	// go; the tests have no use for that second.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	testscript.Main(m, map[string]func(){
		// Self-exec for built-ins: `llorch internal-plugin NAME`.
		"llorch":                 llorchMain,
		"llorch-provider-testok": func() { sdk.Serve(&testOK{}) },
		"llorch-provider-crash":  crashMain,
		"llorch-provider-v2":     v2Main,
		"llorch-provider-stock":  stockMain,
		"llorch-provider-vllm":   func() { sdk.Serve(vllm.New()) },
	})
}

func llorchMain() {
	if len(os.Args) == 3 && os.Args[1] == "internal-plugin" && os.Args[2] == "testok" {
		sdk.Serve(&testOK{})
		return
	}
	fmt.Fprintf(os.Stderr, "llorch (test): unexpected arguments %q\n", os.Args[1:])
	os.Exit(2)
}

// testOK is a well-behaved provider. Pool addresses select test behaviours:
// "pool.block" makes Ensure wait for cancellation, and ValidatePool of
// "pool.query-cancelled" reports what that Ensure saw.
type testOK struct {
	mu        sync.Mutex
	cancelled chan error
}

func (p *testOK) cancelledCh() chan error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancelled == nil {
		p.cancelled = make(chan error, 1)
	}
	return p.cancelled
}

func (p *testOK) GetSchema(context.Context) (*providers.Schema, providers.Diagnostics) {
	return &providers.Schema{
		Version: "1.0.0",
		Provider: &providers.Block{Attributes: map[string]*providers.Attribute{
			"binary": sdk.Attr(cty.String, "Engine binary."),
		}},
		Pool: &providers.Block{Attributes: map[string]*providers.Attribute{
			"api_key": sdk.Attr(cty.String, "Secret.", sdk.Sensitive, sdk.ForcesReplacement),
		}},
	}, nil
}

func (p *testOK) Configure(_ context.Context, req providers.ConfigureRequest) providers.Diagnostics {
	sdk.Logger().Info("configured by host", "llorch_version", req.LlorchVersion)
	fmt.Fprintln(os.Stderr, "testok: configured") // redirected to the host by go-plugin
	return nil
}

func (p *testOK) ValidatePool(ctx context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
	if req.Pool.Addr != "pool.query-cancelled" {
		return nil
	}
	select {
	case err := <-p.cancelledCh():
		return providers.Diagnostics{providers.Warnf("Ensure ended", "ensure saw %v", err)}
	case <-ctx.Done():
		return providers.Diagnostics{providers.Errorf("No cancellation", "no Ensure was cancelled")}
	}
}

func (p *testOK) PlanPool(context.Context, providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
	return &providers.PlannedPool{EngineVersion: "testok-1"}, nil
}

func (p *testOK) Ensure(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	if req.Pool.Addr == "pool.block" {
		req.Progress(providers.Event{Stage: "download", Message: "waiting"})
		<-ctx.Done()
		p.cancelledCh() <- ctx.Err()
		return nil, providers.Diagnostics{providers.Errorf("Cancelled", "stopped")}
	}
	for i := 1; i <= 3; i++ {
		req.Progress(providers.Event{Stage: "build", Message: "step", Current: int64(i), Total: 3})
	}
	key, _ := sdk.GetString(req.Config, "api_key")
	devices := "nil"
	if req.Pool.Devices != nil {
		devices = fmt.Sprint(req.Pool.Devices)
	}
	return &providers.PreparedEngine{
		BinaryPath:    "/bin/engine",
		Args:          []string{"--devices=" + devices},
		SecretEnv:     map[string]string{"API_KEY": key},
		EngineVersion: "testok-1",
		PoolID:        req.Pool.ID,
	}, nil
}

func (p *testOK) Cleanup(context.Context, providers.CleanupRequest) providers.Diagnostics { return nil }
func (p *testOK) Close() error                                                            { return nil }

// crashProvider dies in the middle of Ensure after a last word on stderr.
type crashProvider struct {
	testOK
	stderr io.Writer
}

func crashMain() {
	// go-plugin redirects os.Stderr once serving; keep the real one, where
	// a dying process's last words (and Go's panics) go.
	sdk.Serve(&crashProvider{stderr: os.Stderr})
}

func (p *crashProvider) Ensure(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	req.Progress(providers.Event{Stage: "download", Message: "starting"})
	fmt.Fprintln(p.stderr, "crash-test: out of memory while staging")
	os.Exit(3)
	return nil, nil
}

// v2Main serves a provider speaking a protocol version llorch does not.
func v2Main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  2,
			MagicCookieKey:   plugin.Handshake.MagicCookieKey,
			MagicCookieValue: plugin.Handshake.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{2: {plugin.PluginName: &plugin.GRPCProviderPlugin{Impl: &testOK{}}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger:           hclog.NewNullLogger(),
	})
}

// stockMain serves testOK with go-plugin's own Serve, as a provider written
// without llorch's SDK does: it answers llorch's certificate with a P-521
// one of its own (AutoMTLS) instead of using the key llorch made for it.
func stockMain() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{plugin.ProtocolVersion: {plugin.PluginName: &plugin.GRPCProviderPlugin{Impl: &testOK{}}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger:           hclog.NewNullLogger(),
	})
}

// installed returns the path of a command testscript put on PATH.
func installed(t testing.TB, cmd string) string {
	t.Helper()
	path, err := exec.LookPath(cmd)
	if err != nil {
		t.Fatalf("%s is not on PATH: %v", cmd, err)
	}
	return path
}

// linkPlugins returns a new plugin directory holding a symlink for each
// named test plugin.
func linkPlugins(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		if err := os.Symlink(installed(t, PluginPrefix+name), filepath.Join(dir, PluginPrefix+name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyPlugin copies a test plugin into dir under its own name, so the test
// can change the copy's bytes.
func copyPlugin(t testing.TB, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(installed(t, PluginPrefix+name))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, PluginPrefix+name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeScript writes an executable shell script into dir as a plugin.
func writeScript(t testing.TB, dir, name, script string) string {
	t.Helper()
	path := filepath.Join(dir, PluginPrefix+name)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newResolver(t testing.TB, opts Options) *Resolver {
	t.Helper()
	if opts.Dirs == nil {
		opts.Dirs = []string{}
	}
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes go-plugin
// makes, which can also announce the first write of a given text.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.seen != nil && b.want != "" && strings.Contains(b.buf.String(), b.want) {
		close(b.seen)
		b.seen = nil
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
