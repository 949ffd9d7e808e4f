// Package config loads a working directory's *.llorch.hcl files into a
// Config: it decodes the llorch, variable, locals, provider and pool blocks,
// resolves input variables (defaults, LLORCH_VAR_*, *.auto.llorchvars.hcl,
// -var and -var-file), evaluates locals and expands count and for_each, fills
// in defaults and checks every value it can check without a provider.
// Problems come back as hcl.Diagnostics with source ranges, all of them, not
// just the first.
//
// Provider-specific blocks (provider "llamacpp" {} and a pool's llamacpp {})
// stay undecoded hcl.Body values with the EvalContext to decode them, because
// their schema comes from the provider at plan time. Values from sensitive
// variables keep SensitiveMark inside those bodies.
//
// Files, a large one in pieces, and pool blocks are parsed and decoded on
// every core, with results gathered in source order, so that diagnostics
// come out as they would one at a time.
//
// Pool and nested blocks are decoded with explicit hcl.BodySchema values
// rather than gohcl, so that every value goes through one evaluator that
// records sensitive marks (Pool.SensitivePaths) and range-checks numbers,
// durations and enums with precise diagnostics.
package config
