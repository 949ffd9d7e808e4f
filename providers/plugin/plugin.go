package plugin

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/proto"
)

// ProtocolVersion is the llorch plugin protocol this build speaks. A change
// that old plugins cannot follow gets a new version, served next to this one
// in VersionedPlugins.
const ProtocolVersion = 1

// PluginName is the name under which a plugin serves its provider.
const PluginName = "provider"

// Handshake is shared by llorch and every provider plugin. go-plugin refuses
// a plugin whose protocol version or magic cookie differs.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion: ProtocolVersion,
	// The magic cookie is a UX guard, not security: a plugin started by hand
	// (without it in the environment) says that it is a plugin instead of
	// waiting for a handshake. The values must NEVER change: every plugin
	// ever built checks for them.
	MagicCookieKey:   "LLORCH_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "a62bf4365e8fd81be8adb4d087f5047f282c617ee39e2788bc4847c7a9966616",
}

// VersionedPlugins is the plugin set for each protocol version llorch
// speaks, for the host side (Impl unset). gRPC is the only transport.
var VersionedPlugins = map[int]goplugin.PluginSet{
	ProtocolVersion: {PluginName: &GRPCProviderPlugin{}},
}

// AllowedProtocols lists the go-plugin transports llorch accepts: gRPC only.
var AllowedProtocols = []goplugin.Protocol{goplugin.ProtocolGRPC}

// GRPCProviderPlugin is the go-plugin Plugin for a llorch provider. The
// embedded goplugin.Plugin stands in for the net/rpc half, which llorch does
// not serve.
type GRPCProviderPlugin struct {
	goplugin.Plugin

	// Impl is the provider served. It is set only in the plugin process.
	Impl providers.Provider

	// Name names the provider in host-side diagnostics, such as "the
	// "vllm" provider plugin did not respond". Host only; optional.
	Name string
	// Diagnose, when set, is called after the plugin failed to answer a call
	// because its connection broke (usually a crash). What it returns is
	// added to the diagnostic; discovery returns the tail of the plugin's
	// stderr. Host only; optional.
	Diagnose func() string
}

var _ goplugin.GRPCPlugin = (*GRPCProviderPlugin)(nil)

// GRPCServer registers the provider service on s (plugin side).
func (p *GRPCProviderPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterProviderServer(s, &GRPCServer{Impl: p.Impl})
	return nil
}

// GRPCClient returns a *GRPCClient speaking to the plugin over c (host side).
func (p *GRPCProviderPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &GRPCClient{
		client:   proto.NewProviderClient(c),
		name:     p.Name,
		diagnose: p.Diagnose,
	}, nil
}
