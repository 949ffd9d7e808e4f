//go:build tools

// Package deps pins modules that packages under construction will import.
package deps

import (
	_ "github.com/google/uuid"
	_ "github.com/gpustack/gguf-parser-go"
	_ "github.com/hashicorp/go-hclog"
	_ "github.com/hashicorp/go-multierror"
	_ "github.com/hashicorp/go-plugin"
	_ "github.com/hashicorp/hcl/v2"
	_ "github.com/hashicorp/hcl/v2/ext/typeexpr"
	_ "github.com/hashicorp/hcl/v2/gohcl"
	_ "github.com/hashicorp/hcl/v2/hcldec"
	_ "github.com/hashicorp/hcl/v2/hclwrite"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/spf13/afero"
	_ "github.com/zclconf/go-cty/cty/function/stdlib"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/term"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/proto"
)
