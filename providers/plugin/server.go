package plugin

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/proto"
)

// GRPCServer is the plugin side: it implements the proto service by calling
// Impl. The ctx each method hands to Impl is the call's own, so it is
// cancelled when the host cancels the call or goes away.
type GRPCServer struct {
	proto.UnimplementedProviderServer

	Impl providers.Provider
}

var _ proto.ProviderServer = (*GRPCServer)(nil)

// GetSchema implements proto.ProviderServer.
func (s *GRPCServer) GetSchema(ctx context.Context, _ *proto.GetSchema_Request) (*proto.GetSchema_Response, error) {
	schema, diags := s.Impl.GetSchema(ctx)
	ps, err := encodeSchema(schema)
	if err != nil {
		diags = append(diags, providers.Errorf("Invalid provider schema",
			"The provider's schema cannot be sent to llorch: %v. This is a bug in the provider.", err))
	}
	return &proto.GetSchema_Response{Schema: ps, Diagnostics: encodeDiagnostics(diags)}, nil
}

// Configure implements proto.ProviderServer.
func (s *GRPCServer) Configure(ctx context.Context, req *proto.Configure_Request) (*proto.Configure_Response, error) {
	cfg, err := decodeValue(req.GetConfig())
	if err != nil {
		return &proto.Configure_Response{Diagnostics: badRequest("Configure", err)}, nil
	}
	diags := s.Impl.Configure(ctx, providers.ConfigureRequest{Config: cfg, LlorchVersion: req.GetLlorchVersion(),
		ConfigDir: req.GetConfigDir(), CacheDir: req.GetCacheDir()})
	return &proto.Configure_Response{Diagnostics: encodeDiagnostics(diags)}, nil
}

// ValidatePool implements proto.ProviderServer.
func (s *GRPCServer) ValidatePool(ctx context.Context, req *proto.ValidatePool_Request) (*proto.ValidatePool_Response, error) {
	cfg, err := decodeValue(req.GetConfig())
	if err != nil {
		return &proto.ValidatePool_Response{Diagnostics: badRequest("ValidatePool", err)}, nil
	}
	diags := s.Impl.ValidatePool(ctx, providers.ValidatePoolRequest{Pool: decodePool(req.GetPool()), Config: cfg})
	return &proto.ValidatePool_Response{Diagnostics: encodeDiagnostics(diags)}, nil
}

// PlanPool implements proto.ProviderServer.
func (s *GRPCServer) PlanPool(ctx context.Context, req *proto.PlanPool_Request) (*proto.PlanPool_Response, error) {
	cfg, err := decodeValue(req.GetConfig())
	if err != nil {
		return &proto.PlanPool_Response{Diagnostics: badRequest("PlanPool", err)}, nil
	}
	planned, diags := s.Impl.PlanPool(ctx, providers.PlanPoolRequest{
		Pool:   decodePool(req.GetPool()),
		Config: cfg,
		Prior:  decodePrepared(req.GetPrior()),

		PinnedBinarySHA256: req.GetPinnedBinarySha256(),
	})
	return &proto.PlanPool_Response{Planned: encodePlanned(planned), Diagnostics: encodeDiagnostics(diags)}, nil
}

// Ensure implements proto.ProviderServer: it streams each progress event
// Impl reports, then exactly one result.
func (s *GRPCServer) Ensure(req *proto.Ensure_Request, stream grpc.ServerStreamingServer[proto.Ensure_Response]) error {
	cfg, err := decodeValue(req.GetConfig())
	if err != nil {
		return stream.Send(ensureResult(nil, badRequest("Ensure", err)))
	}

	// A provider may report progress from several goroutines, and even
	// after Ensure returned; a gRPC stream allows one sender at a time and
	// nothing after the result.
	var (
		mu      sync.Mutex
		stopped bool
	)
	progress := func(ev providers.Event) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err := stream.Send(&proto.Ensure_Response{Kind: &proto.Ensure_Response_Progress{Progress: encodeEvent(ev)}}); err != nil {
			// The host is gone; the call's ctx is cancelled with it, and
			// the provider learns of it there.
			stopped = true
		}
	}

	pe, diags := s.Impl.Ensure(stream.Context(), providers.EnsureRequest{
		Pool:     decodePool(req.GetPool()),
		Config:   cfg,
		Progress: progress,
	})

	mu.Lock()
	defer mu.Unlock()
	stopped = true
	return stream.Send(ensureResult(encodePrepared(pe), encodeDiagnostics(diags)))
}

// Cleanup implements proto.ProviderServer.
func (s *GRPCServer) Cleanup(ctx context.Context, req *proto.Cleanup_Request) (*proto.Cleanup_Response, error) {
	cfg, err := decodeValue(req.GetConfig())
	if err != nil {
		return &proto.Cleanup_Response{Diagnostics: badRequest("Cleanup", err)}, nil
	}
	diags := s.Impl.Cleanup(ctx, providers.CleanupRequest{
		Pool:     decodePool(req.GetPool()),
		Config:   cfg,
		Prepared: decodePrepared(req.GetPrepared()),
	})
	return &proto.Cleanup_Response{Diagnostics: encodeDiagnostics(diags)}, nil
}

func ensureResult(pe *proto.PreparedEngine, diags []*proto.Diagnostic) *proto.Ensure_Response {
	return &proto.Ensure_Response{Kind: &proto.Ensure_Response_Result{Result: &proto.Ensure_Result{
		Prepared:    pe,
		Diagnostics: diags,
	}}}
}

func badRequest(method string, err error) []*proto.Diagnostic {
	return encodeDiagnostics(providers.Diagnostics{providers.Errorf("Invalid provider request",
		"The provider could not decode llorch's %s request: %s. The provider and llorch may disagree about the protocol.",
		method, fmt.Sprint(err))})
}
