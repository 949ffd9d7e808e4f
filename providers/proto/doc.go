// Package proto holds the llorch provider plugin protocol (provider.proto)
// and the Go code protoc generates from it. The generated files are
// committed; `make generate` (go generate ./...) rebuilds them byte for byte
// with protoc 3.21.12, protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.6.2
// (see generate.go). The protoc plugins are installed into a temporary
// GOBIN, so they never enter go.mod.
//
// Only providers/plugin imports this package: everything else speaks the Go
// API in package providers.
package proto
