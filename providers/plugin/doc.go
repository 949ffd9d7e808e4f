// Package plugin is the go-plugin glue between llorch and its provider
// plugins: the handshake both sides share, the plugin set, and two thin
// adapters over the gRPC protocol in providers/proto. GRPCClient implements
// providers.Provider in the host by calling the plugin; GRPCServer implements
// the proto service in the plugin by calling a providers.Provider. Neither
// holds logic beyond translating types and turning transport failures into
// diagnostics, so core and plugins share the Go API, not the proto (the shape
// of OpenTofu's internal/plugin and go-plugin's examples/grpc).
//
// Finding, verifying and starting plugin executables is package
// providers/discovery; serving one from a plugin's main is providers/sdk.
package plugin
