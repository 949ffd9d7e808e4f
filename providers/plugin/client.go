package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/proto"
)

// GRPCClient is the host's providers.Provider for a plugin: each method
// encodes its request, calls the plugin, and decodes the answer. The
// caller's ctx travels with every call, so cancelling it on the host
// cancels the plugin's ctx too.
//
// Failures of the call itself (the plugin crashed, the call was cancelled,
// the plugin lacks the method) come back as error diagnostics like any other
// problem, so callers handle one kind of result.
type GRPCClient struct {
	client   proto.ProviderClient
	name     string
	diagnose func() string
}

var _ providers.Provider = (*GRPCClient)(nil)

// GetSchema implements providers.Provider.
func (c *GRPCClient) GetSchema(ctx context.Context) (*providers.Schema, providers.Diagnostics) {
	resp, err := c.client.GetSchema(ctx, &proto.GetSchema_Request{})
	if err != nil {
		return nil, c.callFailed(ctx, "GetSchema", err)
	}
	diags := decodeDiagnostics(resp.GetDiagnostics())
	s, err := decodeSchema(resp.GetSchema())
	if err != nil {
		return nil, append(diags, c.badResponse("GetSchema", err))
	}
	return s, diags
}

// Configure implements providers.Provider.
func (c *GRPCClient) Configure(ctx context.Context, req providers.ConfigureRequest) providers.Diagnostics {
	cfg, err := encodeValue(req.Config)
	if err != nil {
		return providers.Diagnostics{c.badRequest("Configure", err)}
	}
	resp, err := c.client.Configure(ctx, &proto.Configure_Request{Config: cfg, LlorchVersion: req.LlorchVersion,
		ConfigDir: req.ConfigDir, CacheDir: req.CacheDir})
	if err != nil {
		return c.callFailed(ctx, "Configure", err)
	}
	return decodeDiagnostics(resp.GetDiagnostics())
}

// ValidatePool implements providers.Provider.
func (c *GRPCClient) ValidatePool(ctx context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
	cfg, err := encodeValue(req.Config)
	if err != nil {
		return providers.Diagnostics{c.badRequest("ValidatePool", err)}
	}
	resp, err := c.client.ValidatePool(ctx, &proto.ValidatePool_Request{Pool: encodePool(req.Pool), Config: cfg})
	if err != nil {
		return c.callFailed(ctx, "ValidatePool", err)
	}
	return decodeDiagnostics(resp.GetDiagnostics())
}

// PlanPool implements providers.Provider.
func (c *GRPCClient) PlanPool(ctx context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
	cfg, err := encodeValue(req.Config)
	if err != nil {
		return nil, providers.Diagnostics{c.badRequest("PlanPool", err)}
	}
	resp, err := c.client.PlanPool(ctx, &proto.PlanPool_Request{
		Pool:   encodePool(req.Pool),
		Config: cfg,
		Prior:  encodePrepared(req.Prior),

		PinnedBinarySha256: req.PinnedBinarySHA256,
	})
	if err != nil {
		return nil, c.callFailed(ctx, "PlanPool", err)
	}
	return decodePlanned(resp.GetPlanned()), decodeDiagnostics(resp.GetDiagnostics())
}

// Ensure implements providers.Provider. Progress events are delivered to
// req.Progress in order, on the calling goroutine, as they arrive.
func (c *GRPCClient) Ensure(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	cfg, err := encodeValue(req.Config)
	if err != nil {
		return nil, providers.Diagnostics{c.badRequest("Ensure", err)}
	}
	// Ending the call ends the stream, whichever way this function returns.
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.client.Ensure(streamCtx, &proto.Ensure_Request{Pool: encodePool(req.Pool), Config: cfg})
	if err != nil {
		return nil, c.callFailed(ctx, "Ensure", err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, providers.Diagnostics{c.badResponse("Ensure", errors.New("the stream ended without a result"))}
		}
		if err != nil {
			return nil, c.callFailed(ctx, "Ensure", err)
		}
		switch kind := resp.GetKind().(type) {
		case *proto.Ensure_Response_Progress:
			if req.Progress != nil {
				req.Progress(decodeEvent(kind.Progress))
			}
		case *proto.Ensure_Response_Result:
			return decodePrepared(kind.Result.GetPrepared()), decodeDiagnostics(kind.Result.GetDiagnostics())
		default:
			return nil, providers.Diagnostics{c.badResponse("Ensure", errors.New("a stream message carried neither progress nor a result"))}
		}
	}
}

// Cleanup implements providers.Provider.
func (c *GRPCClient) Cleanup(ctx context.Context, req providers.CleanupRequest) providers.Diagnostics {
	cfg, err := encodeValue(req.Config)
	if err != nil {
		return providers.Diagnostics{c.badRequest("Cleanup", err)}
	}
	resp, err := c.client.Cleanup(ctx, &proto.Cleanup_Request{
		Pool:     encodePool(req.Pool),
		Config:   cfg,
		Prepared: encodePrepared(req.Prepared),
	})
	if err != nil {
		return c.callFailed(ctx, "Cleanup", err)
	}
	return decodeDiagnostics(resp.GetDiagnostics())
}

// Close does nothing: the plugin process belongs to the go-plugin client
// that dispensed this provider, and whoever started it stops it (discovery
// wraps GRPCClient with a Close that does).
func (c *GRPCClient) Close() error { return nil }

// what names the plugin in diagnostics: `the "vllm" provider plugin`.
func (c *GRPCClient) what() string {
	if c.name == "" {
		return "the provider plugin"
	}
	return fmt.Sprintf("the %q provider plugin", c.name)
}

// callFailed turns a failed gRPC call into a diagnostic, after OpenTofu's
// grpcErr: the caller's own cancellation first, then a broken connection
// ("Plugin did not respond", usually a crash), then everything else.
func (c *GRPCClient) callFailed(ctx context.Context, method string, err error) providers.Diagnostics {
	st, _ := status.FromError(err)
	var d providers.Diagnostic
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		d = providers.Errorf("Request timed out",
			"%s did not finish the %s call before its deadline.", sentence(c.what()), method)
	case ctx.Err() != nil:
		d = providers.Errorf("Request cancelled", "The %s call to %s was cancelled.", method, c.what())
	case st.Code() == codes.Unavailable, st.Code() == codes.Canceled:
		// Canceled without a cancelled ctx means the connection was closed
		// under the call: the plugin is gone either way.
		d = providers.Errorf(providers.SummaryNoResponse,
			"%s encountered an error, and failed to respond to the %s call.", sentence(c.what()), method)
		if c.diagnose != nil {
			if extra := c.diagnose(); extra != "" {
				d.Detail += " " + extra
			}
		}
	case st.Code() == codes.Unimplemented:
		d = providers.Errorf("Unsupported plugin method",
			"%s does not implement %s; it may have been built for another llorch version.", sentence(c.what()), method)
	default:
		d = providers.Errorf("Plugin error",
			"%s returned an unexpected error from %s: %s.", sentence(c.what()), method, st.Message())
	}
	return providers.Diagnostics{d}
}

func (c *GRPCClient) badRequest(method string, err error) providers.Diagnostic {
	return providers.Errorf("Invalid provider request",
		"llorch could not encode the %s request for %s: %v. This is a bug in llorch.", method, c.what(), err)
}

func (c *GRPCClient) badResponse(method string, err error) providers.Diagnostic {
	return providers.Errorf("Invalid provider response",
		"%s answered %s with something llorch cannot use: %v. This is a bug in the provider.", sentence(c.what()), method, err)
}

// sentence capitalizes s, which starts with an ASCII letter, to open a sentence.
func sentence(s string) string {
	return strings.ToUpper(s[:1]) + s[1:]
}
