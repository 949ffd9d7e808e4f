// Package sdktest is the test harness for provider authors: Connect serves
// a provider in process over the same gRPC protocol and conversions llorch
// uses to talk to a plugin executable, and returns llorch's side of the
// connection. A test that plans and prepares through it sees what llorch
// will see: values that do not survive the protocol, diagnostics, progress
// events in order, and cancellation.
//
//	func TestEnsure(t *testing.T) {
//		p := sdktest.Connect(t, myprovider.New())
//		pe, diags := p.Ensure(t.Context(), providers.EnsureRequest{Pool: pool, Config: cfg})
//		...
//	}
package sdktest

import (
	"testing"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/plugin"
)

// Connect serves impl as the plugin named name would be served, and
// returns the client llorch would use. The connection and the server end
// with the test.
func Connect(t testing.TB, name string, impl providers.Provider) providers.Provider {
	t.Helper()
	ps := map[string]goplugin.Plugin{plugin.PluginName: &plugin.GRPCProviderPlugin{Impl: impl, Name: name}}
	client, _ := goplugin.TestPluginGRPCConn(t, false, ps)
	t.Cleanup(func() { _ = client.Close() })
	raw, err := client.Dispense(plugin.PluginName)
	if err != nil {
		t.Fatalf("sdktest: dispensing the %s provider: %v", name, err)
	}
	p, ok := raw.(providers.Provider)
	if !ok {
		t.Fatalf("sdktest: the %s plugin gave a %T, not a provider", name, raw)
	}
	return p
}
