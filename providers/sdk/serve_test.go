package sdk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/plugin"
)

// closeMarkerEnv names a file the test plugin creates in Close, so a test
// can see that Serve closed the provider after llorch was done with it.
const closeMarkerEnv = "SDKTEST_CLOSE_MARKER"

type testProvider struct{}

func (testProvider) GetSchema(context.Context) (*providers.Schema, providers.Diagnostics) {
	return &providers.Schema{Version: "9.8.7"}, nil
}
func (testProvider) Configure(context.Context, providers.ConfigureRequest) providers.Diagnostics {
	return nil
}
func (testProvider) ValidatePool(context.Context, providers.ValidatePoolRequest) providers.Diagnostics {
	return nil
}
func (testProvider) PlanPool(context.Context, providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
	return &providers.PlannedPool{}, nil
}
func (testProvider) Ensure(context.Context, providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	return &providers.PreparedEngine{}, nil
}
func (testProvider) Cleanup(context.Context, providers.CleanupRequest) providers.Diagnostics {
	return nil
}
func (testProvider) Close() error {
	if path := os.Getenv(closeMarkerEnv); path != "" {
		return os.WriteFile(path, []byte("closed\n"), 0o600)
	}
	return nil
}

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"llorch-provider-sdktest": func() { Serve(testProvider{}) },
	})
}

func pluginPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("llorch-provider-sdktest")
	if err != nil {
		t.Fatalf("the test plugin is not on PATH: %v", err)
	}
	return path
}

func TestPluginRunByHandExplainsItselfAndExits1(t *testing.T) {
	t.Setenv(plugin.Handshake.MagicCookieKey, "")
	cmd := exec.CommandContext(t.Context(), pluginPath(t))
	cmd.Args[0] = "llorch-provider-sdktest"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()

	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	want := "llorch-provider-sdktest is a llorch provider plugin. It is started by llorch and talks to llorch\n" +
		"over a private channel, so there is nothing to do when it is run by hand.\n\n" +
		"To use a third-party provider, put its executable (named llorch-provider-NAME)\n" +
		"in .llorch/plugins, $LLORCH_PLUGIN_DIR or ~/.llorch/plugins, run `llorch init`,\n" +
		"and set engine = \"NAME\" in a pool.\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
}

func TestServeSpeaksTheLlorchProtocolAndClosesTheProvider(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "closed")
	t.Setenv(closeMarkerEnv, marker)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: plugin.VersionedPlugins,
		Cmd:              exec.Command(pluginPath(t)),
		AllowedProtocols: plugin.AllowedProtocols,
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting the plugin: %v", err)
	}
	raw, err := rpc.Dispense(plugin.PluginName)
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	schema, diags := raw.(providers.Provider).GetSchema(t.Context())
	if diags.HasErrors() || schema.Version != "9.8.7" {
		t.Fatalf("GetSchema: %#v, %v", schema, diags)
	}
	if got := client.NegotiatedVersion(); got != plugin.ProtocolVersion {
		t.Errorf("negotiated protocol %d, want %d", got, plugin.ProtocolVersion)
	}

	client.Kill() // graceful: llorch asks the plugin to shut down
	data, err := os.ReadFile(marker)
	if err != nil || string(data) != "closed\n" {
		t.Errorf("provider not closed after shutdown: %q, %v", data, err)
	}
}

func TestPluginLoggerLevel(t *testing.T) {
	tests := []struct {
		name      string
		llorchLog string
		shown     []string
		hidden    []string
	}{
		{name: "unset still writes warnings for crash reports", llorchLog: "",
			shown: []string{"at warn", "at error"}, hidden: []string{"at info", "at debug"}},
		{name: "debug follows llorch", llorchLog: "debug",
			shown: []string{"at debug", "at info", "at warn"}, hidden: []string{"at trace"}},
		{name: "error still writes warnings", llorchLog: "error",
			shown: []string{"at warn", "at error"}, hidden: []string{"at info"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := newLogger(&buf, func(k string) string {
				if k == "LLORCH_LOG" {
					return tc.llorchLog
				}
				return ""
			})
			l.Trace("at trace")
			l.Debug("at debug")
			l.Info("at info")
			l.Warn("at warn")
			l.Error("at error")
			out := buf.String()
			for _, s := range tc.shown {
				if !strings.Contains(out, `"@message":"`+s+`"`) {
					t.Errorf("%q missing from JSON log:\n%s", s, out)
				}
			}
			for _, s := range tc.hidden {
				if strings.Contains(out, s) {
					t.Errorf("%q written, want it filtered:\n%s", s, out)
				}
			}
		})
	}
}
