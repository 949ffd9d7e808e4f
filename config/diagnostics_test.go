package config

import (
	"testing"
)

// okModel completes a pool so that a case shows only the problem it is
// about.
const okModel = `model { ref = "file:/m.gguf" }`

func TestLoadReportsBadInput(t *testing.T) {
	twoEngines := LoadOptions{Engines: []string{"llamacpp", "vllm"}}
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  []string
	}{
		{
			name:  "syntax error",
			files: map[string]string{"main.llorch.hcl": "pool \"chat\" {\n  engine = \n}\n"},
			want: []string{
				`main.llorch.hcl:2:12: Invalid expression: Expected the start of an expression, but found an invalid expression token.`,
			},
		},
		{
			name: "syntax errors in every file are all reported",
			files: map[string]string{
				"a.llorch.hcl": "pool \"a\" {\n",
				"b.llorch.hcl": "pool \"b\" { engine = \"llamacpp\" }}\n",
			},
			want: []string{
				`a.llorch.hcl:1:10: Unclosed configuration block: There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file.`,
				`b.llorch.hcl:1:33: Missing newline after block definition: A block definition must end with a newline.`,
			},
		},
		{
			name: "misspelt attribute suggests the right name",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine  = "llamacpp"
  replica = 2
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:3:3: Unsupported argument: An argument named "replica" is not expected here. Did you mean "replicas"?`,
			},
		},
		{
			name: "misspelt block suggests the right name",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
  helth {
    path = "/health"
  }
}`},
			want: []string{
				`main.llorch.hcl:4:3: Unsupported block type: Blocks of type "helth" are not expected here. Did you mean "health"?`,
			},
		},
		{
			name: "misspelt top-level block suggests the right name",
			files: map[string]string{"main.llorch.hcl": `pools "chat" {
}`},
			want: []string{
				`main.llorch.hcl:1:1: Unsupported block type: Blocks of type "pools" are not expected here. Did you mean "pool"?`,
			},
		},
		{
			name: "misspelt attribute in a nested block suggests the right name",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
  restart {
    max_failure = 3
  }
}`},
			want: []string{
				`main.llorch.hcl:5:5: Unsupported argument: An argument named "max_failure" is not expected here. Did you mean "max_failures"?`,
			},
		},
		{
			name: "wrong type",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine   = "llamacpp"
  replicas = "two"
  flags    = "--parallel 4"
  env      = ["A=1"]
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:3:14: Incorrect attribute value type: Inappropriate value for attribute "replicas": a number is required.`,
				`main.llorch.hcl:4:14: Incorrect attribute value type: Inappropriate value for attribute "flags": list of string required, but have string.`,
				`main.llorch.hcl:5:14: Incorrect attribute value type: Inappropriate value for attribute "env": map of string required.`,
			},
		},
		{
			name: "duplicate pool name names the other definition",
			files: map[string]string{
				"a.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
}`,
				"b.llorch.hcl": `

pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
}`,
			},
			want: []string{
				`b.llorch.hcl:3:1: Duplicate pool name: A pool named "chat" was already declared at a.llorch.hcl:1. Pool names must be unique across all *.llorch.hcl files.`,
			},
		},
		{
			name: "missing engine",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:1:13: Missing required argument: The argument "engine" is required, but no definition was found. Set it to the provider that runs this pool, like engine = "llamacpp".`,
			},
		},
		{
			name: "missing model block",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
}`},
			want: []string{
				`main.llorch.hcl:1:13: Missing model block: A pool needs a model block saying which model to serve, like model { ref = "hf:org/repo/model.gguf" }.`,
			},
		},
		{
			name: "missing model ref",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  model {
    sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
  }
}`},
			want: []string{
				`main.llorch.hcl:3:9: Missing required argument: The argument "ref" is required in the model block, but no definition was found. Set it to where the model comes from, like ref = "file:/srv/models/model.gguf".`,
			},
		},
		{
			name: "unknown engine lists known engines and suggests one",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacp"
  ` + okModel + `
}`},
			opts: twoEngines,
			want: []string{
				`main.llorch.hcl:2:12: Unknown engine: There is no engine named "llamacp". Did you mean "llamacpp"? The known engines are "llamacpp" and "vllm". A third-party engine needs its provider plugin, llorch-provider-llamacp, in .llorch/plugins, $LLORCH_PLUGIN_DIR or ~/.llorch/plugins.`,
			},
		},
		{
			name:  "unknown engine in a provider block",
			files: map[string]string{"main.llorch.hcl": `provider "olama" {}`},
			opts:  LoadOptions{Engines: []string{"llamacpp", "ollama", "vllm"}},
			want: []string{
				`main.llorch.hcl:1:10: Unknown engine: There is no engine named "olama". Did you mean "ollama"? The known engines are "llamacpp", "ollama" and "vllm". A third-party engine needs its provider plugin, llorch-provider-olama, in .llorch/plugins, $LLORCH_PLUGIN_DIR or ~/.llorch/plugins.`,
			},
		},
		{
			name: "duplicate provider block",
			files: map[string]string{"main.llorch.hcl": `provider "llamacpp" {}
provider "llamacpp" {}`},
			want: []string{
				`main.llorch.hcl:2:1: Duplicate provider block: Only one provider "llamacpp" block is allowed. Another was defined at main.llorch.hcl:1.`,
			},
		},
		{
			name: "engine block that does not match engine",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
  vllm {
    tensor_parallel = 2
  }
}`},
			opts: twoEngines,
			want: []string{
				`main.llorch.hcl:4:3: Block does not match engine: This pool's engine is "llamacpp", so a vllm block does not apply to it. Rename the block to llamacpp, or change engine to "vllm".`,
			},
		},
		{
			name: "count with for_each",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  count    = 2
  for_each = toset(["a"])
  engine   = "llamacpp"
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:3:3: Invalid combination of "count" and "for_each": The "count" and "for_each" arguments are mutually exclusive: use count for a number of identical pools, or for_each for one pool per key. The count is at main.llorch.hcl:2.`,
			},
		},
		{
			name: "zero and negative replicas",
			files: map[string]string{"main.llorch.hcl": `pool "a" {
  engine   = "llamacpp"
  replicas = 0
  ` + okModel + `
}
pool "b" {
  engine   = "llamacpp"
  replicas = -1
  ` + okModel + `
}
pool "c" {
  engine   = "llamacpp"
  replicas = 1.5
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:3:14: Invalid replica count: replicas must be at least 1, but it is 0. To remove every replica of this pool, remove the pool block, or run llorch destroy -target='pool.a'.`,
				`main.llorch.hcl:8:14: Invalid replica count: replicas must be at least 1, but it is -1. To remove every replica of this pool, remove the pool block, or run llorch destroy -target='pool.b'.`,
				`main.llorch.hcl:13:14: Invalid number: replicas must be a whole number, but it is 1.5.`,
			},
		},
		{
			name: "port outside 1-65535",
			files: map[string]string{"main.llorch.hcl": `pool "a" {
  engine = "llamacpp"
  port   = 70000
  ` + okModel + `
}
pool "b" {
  engine = "llamacpp"
  port   = -1
  ` + okModel + `
}
pool "c" {
  engine   = "llamacpp"
  replicas = 2
  port     = 65535
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:3:12: Invalid port: port 70000 is outside the range 1–65535. Use 0, or leave port out, to pick free ports at apply time.`,
				`main.llorch.hcl:8:12: Invalid port: port -1 is outside the range 1–65535. Use 0, or leave port out, to pick free ports at apply time.`,
				`main.llorch.hcl:14:14: Invalid port: With port 65535 and 2 replicas, the last replica (r1) would listen on port 65536, above 65535. Use a lower port or fewer replicas.`,
			},
		},
		{
			name: "two pools claiming the same port",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine   = "llamacpp"
  replicas = 3
  port     = 8080
  ` + okModel + `
}
pool "embed" {
  engine = "llamacpp"
  port   = 8082
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:9:12: Port conflict: pool.embed/r0 would listen on 127.0.0.1:8082, which pool.chat/r2 (main.llorch.hcl:4) also claims. Give each pool its own ports, or leave port out to pick free ports at apply time.`,
			},
		},
		{
			name: "wildcard host conflicts with every host",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  host   = "10.0.0.5"
  port   = 8080
  ` + okModel + `
}
pool "embed" {
  engine   = "llamacpp"
  host     = "::"
  replicas = 2
  port     = 8079
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:4:12: Port conflict: pool.chat/r0 would listen on 10.0.0.5:8080, which pool.embed/r1 (main.llorch.hcl:11) also claims. Give each pool its own ports, or leave port out to pick free ports at apply time.`,
			},
		},
		{
			name: "for_each instances with one fixed port conflict with each other",
			files: map[string]string{"main.llorch.hcl": `pool "embed" {
  for_each = toset(["bge", "e5"])
  engine   = "llamacpp"
  port     = 9000
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:4:14: Port conflict: pool.embed["e5"]/r0 would listen on 127.0.0.1:9000, which pool.embed["bge"]/r0 (main.llorch.hcl:4) also claims. Give each pool its own ports, or leave port out to pick free ports at apply time.`,
			},
		},
		{
			name: "undefined variable and local",
			files: map[string]string{"main.llorch.hcl": `variable "models" { default = "/srv" }
locals {
  dir = "/srv"
}
pool "chat" {
  engine = "llamacpp"
  model { ref = "file:${var.model}/${local.dri}/q.gguf" }
  flags  = [var.nope]
  llamacpp {
    api_key = var.secret
  }
}`},
			want: []string{
				`main.llorch.hcl:7:25: Reference to undeclared input variable: An input variable with the name "model" has not been declared. Did you mean "models"? Declare it with a variable "model" {} block.`,
				`main.llorch.hcl:7:38: Reference to undeclared local value: A local value with the name "dri" has not been declared. Did you mean "dir"? Declare it in a locals {} block.`,
				`main.llorch.hcl:8:13: Reference to undeclared input variable: An input variable with the name "nope" has not been declared. Declare it with a variable "nope" {} block.`,
				`main.llorch.hcl:10:15: Reference to undeclared input variable: An input variable with the name "secret" has not been declared. Declare it with a variable "secret" {} block.`,
			},
		},
		{
			name: "each and count outside for_each and count",
			files: map[string]string{"main.llorch.hcl": `locals {
  k = each.key
}
pool "chat" {
  engine = "llamacpp"
  port   = 8000 + count.index
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:2:7: Reference to "each" in context without for_each: The "each" object can be used only in a pool block that sets for_each.`,
				`main.llorch.hcl:6:19: Reference to "count" in non-counted context: The "count" object can be used only in a pool block that sets count.`,
			},
		},
		{
			name: "var used on its own",
			files: map[string]string{"main.llorch.hcl": `locals {
  all = var
}`},
			want: []string{
				`main.llorch.hcl:2:9: Invalid reference: The "var" object cannot be used on its own. Refer to one of its attributes, like var.NAME.`,
			},
		},
		{
			name: "malformed, negative and zero durations",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
  health {
    interval      = "10 sec"
    live_interval = "0s"
  }
  restart {
    cooldown = "-5s"
  }
  drain {
    deadline = 30
  }
}`},
			want: []string{
				`main.llorch.hcl:5:21: Invalid duration: "10 sec" is not a duration; use a number and a unit, like "30s" or "5m".`,
				`main.llorch.hcl:6:21: Invalid duration: health.live_interval must be more than zero, like "100ms" or "5s".`,
				`main.llorch.hcl:9:16: Invalid duration: "-5s" is negative; restart.cooldown must be 0 or more, like "0s" or "30s".`,
				`main.llorch.hcl:12:16: Invalid duration: "30" is not a duration; use a number and a unit, like "30s" or "5m".`,
			},
		},
		{
			name: "bad enum values get suggestions",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
  restart {
    policy = "allways"
  }
  update {
    strategy = "drain-first"
  }
}
pool "other" {
  engine = "llamacpp"
  ` + okModel + `
  restart {
    policy = "sometimes"
  }
}`},
			want: []string{
				`main.llorch.hcl:5:14: Invalid restart policy: "allways" is not a restart policy. Did you mean "always"? Use "always", "on-failure" or "never".`,
				`main.llorch.hcl:8:16: Invalid update strategy: "drain-first" is not an update strategy. Did you mean "drain_first"? Use "create_before_destroy" or "drain_first".`,
				`main.llorch.hcl:15:14: Invalid restart policy: "sometimes" is not a restart policy. Use "always", "on-failure" or "never".`,
			},
		},
		{
			name: "sha256 that is not 64 hex characters",
			files: map[string]string{"main.llorch.hcl": `pool "a" {
  engine = "llamacpp"
  model {
    ref    = "file:/m.gguf"
    sha256 = "abc123"
  }
}
pool "b" {
  engine = "llamacpp"
  model {
    ref    = "file:/m.gguf"
    sha256 = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
  }
}`},
			want: []string{
				`main.llorch.hcl:5:14: Invalid sha256: "abc123" is not a SHA-256 digest: it must be exactly 64 hexadecimal characters, and it has 6.`,
				`main.llorch.hcl:12:14: Invalid sha256: "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz" is not a SHA-256 digest: it must contain only hexadecimal characters (0-9, a-f).`,
			},
		},
		{
			name: "model references without a known scheme or a path",
			files: map[string]string{"main.llorch.hcl": `pool "a" {
  engine = "llamacpp"
  model { ref = "/srv/models/q.gguf" }
}
pool "b" {
  engine = "llamacpp"
  model { ref = "hf:Qwen" }
}
pool "c" {
  engine = "llamacpp"
  model { ref = "file:" }
}`},
			want: []string{
				`main.llorch.hcl:3:17: Invalid model reference: "/srv/models/q.gguf" is not a model reference. Use "file:/path/to/model.gguf", "hf:org/repo/model.gguf" (optionally followed by @revision) or an https:// URL.`,
				`main.llorch.hcl:7:17: Invalid model reference: "hf:Qwen" is not a Hugging Face reference: write it as hf:org/repo/path/to/model.gguf (or hf:org/repo for engines that load a whole repository), optionally followed by @revision.`,
				`main.llorch.hcl:11:17: Invalid model reference: "file:" names no file. Use "file:/path/to/model.gguf", "hf:org/repo/model.gguf" (optionally followed by @revision) or an https:// URL.`,
			},
		},
		{
			name: "restart numbers out of range",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
  restart {
    initial_backoff = "2m"
    multiplier      = 0.5
    jitter          = 1.5
    max_failures    = 0
  }
  health {
    failures = 0
  }
}`},
			want: []string{
				`main.llorch.hcl:5:23: Invalid backoff: restart.max_backoff (1m0s) is shorter than restart.initial_backoff (2m0s). Make max_backoff at least as long as initial_backoff.`,
				`main.llorch.hcl:6:23: Invalid multiplier: restart.multiplier must be at least 1, so the backoff never shrinks, but it is 0.5.`,
				`main.llorch.hcl:7:23: Invalid jitter: restart.jitter must be between 0 and 1 (a fraction of each delay), but it is 1.5.`,
				`main.llorch.hcl:8:23: Invalid failure count: restart.max_failures must be at least 1, but it is 0: it is how many failures in a row open the circuit breaker.`,
				`main.llorch.hcl:11:16: Invalid failure count: health.failures must be at least 1, but it is 0: it is how many liveness probes in a row must fail before a restart.`,
			},
		},
		{
			name: "bad devices, ctx, host, health path and env name",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine  = "llamacpp"
  ` + okModel + `
  devices = [0, -1, 0]
  ctx     = -4096
  host    = "http://localhost"
  env     = { "A=B" = "1" }
  health {
    path = "health"
  }
}`},
			want: []string{
				`main.llorch.hcl:4:13: Invalid device index: devices[1] is -1, but device indices are GPU numbers: whole numbers, 0 or more.`,
				`main.llorch.hcl:4:13: Duplicate device index: devices lists GPU 0 more than once. List each GPU once.`,
				`main.llorch.hcl:5:13: Invalid context size: ctx must be 0 or more, but it is -4096. Use 0 for the model's own context length.`,
				`main.llorch.hcl:6:13: Invalid host: "http://localhost" is not a host name or IP address. Use the address the engine should listen on, like "127.0.0.1", "0.0.0.0" or "::1".`,
				`main.llorch.hcl:7:13: Invalid environment variable name: "A=B" cannot be an environment variable name: names must be non-empty and contain no "=".`,
				`main.llorch.hcl:9:12: Invalid health path: "health" must start with "/", like "/health".`,
			},
		},
		{
			name: "duplicate nested blocks",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  ` + okModel + `
  health {}
  health {}
  llamacpp {}
  llamacpp {}
}`},
			want: []string{
				`main.llorch.hcl:5:3: Duplicate health block: Only one health block is allowed in a pool. Another was defined at main.llorch.hcl:4.`,
				`main.llorch.hcl:7:3: Duplicate llamacpp block: Only one llamacpp block is allowed in a pool. Another was defined at main.llorch.hcl:6.`,
			},
		},
		{
			name: "two pool instances with the same file-safe ID",
			files: map[string]string{"main.llorch.hcl": `pool "embed" {
  for_each = toset(["a b", "a/b"])
  engine   = "llamacpp"
  ` + okModel + `
}
pool "x" {
  for_each = toset(["0"])
  engine   = "llamacpp"
  ` + okModel + `
}
pool "y" {
  count  = 1
  engine = "llamacpp"
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:1:1: Duplicate pool ID: pool.embed["a b"] and pool.embed["a/b"] both get the file-safe ID "embed-a-b", which names their run directories and handoff files. Rename a pool or change a for_each key so the IDs differ.`,
			},
		},
		{
			name: "invalid pool and variable names",
			files: map[string]string{"main.llorch.hcl": `pool "my pool" {}
variable "1st" {}`},
			want: []string{
				`main.llorch.hcl:1:6: Invalid pool name: "my pool" is not a valid pool name. A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.`,
				`main.llorch.hcl:2:10: Invalid variable name: "1st" is not a valid variable name. A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes.`,
			},
		},
		{
			name: "bad count and for_each values",
			files: map[string]string{"main.llorch.hcl": `variable "keys" {
  default   = ["a"]
  type      = set(string)
  sensitive = true
}
pool "a" {
  count  = -1
  engine = "llamacpp"
  ` + okModel + `
}
pool "b" {
  count  = 1.5
  engine = "llamacpp"
  ` + okModel + `
}
pool "c" {
  for_each = ["x", "y"]
  engine   = "llamacpp"
  ` + okModel + `
}
pool "d" {
  for_each = var.keys
  engine   = "llamacpp"
  ` + okModel + `
}
pool "e" {
  for_each = toset([1, 2])
  engine   = "llamacpp"
  ` + okModel + `
}`},
			want: []string{
				`main.llorch.hcl:7:12: Invalid count argument: The "count" value must be a whole number, 0 or more, but it is -1.`,
				`main.llorch.hcl:12:12: Invalid count argument: The "count" value must be a whole number, 0 or more, but it is 1.5.`,
				`main.llorch.hcl:17:14: Invalid for_each argument: The "for_each" value must be a map, or a set of strings, and this is a tuple. Convert a list with toset(), like for_each = toset(["a", "b"]).`,
				`main.llorch.hcl:22:14: Invalid for_each argument: The "for_each" value comes from a sensitive value, which would show in pool addresses. Use a value that is not sensitive.`,
				`main.llorch.hcl:27:14: Invalid for_each argument: The "for_each" value is a set of number, but only sets of strings can be used: the strings become the pool keys.`,
			},
		},
		{
			name: "cycle in locals",
			files: map[string]string{"main.llorch.hcl": `locals {
  a = local.b
  b = "${local.c}-x"
  c = local.a
  d = local.d
  e = local.a
}`},
			want: []string{
				`main.llorch.hcl:2:3: Cycle in local values: local.a refers to itself through local.a → local.b → local.c → local.a. Break the cycle by computing one of these values without the others.`,
				`main.llorch.hcl:5:3: Cycle in local values: local.d refers to itself through local.d → local.d. Break the cycle by computing one of these values without the others.`,
			},
		},
		{
			name: "duplicate variable and local",
			files: map[string]string{
				"a.llorch.hcl": `variable "x" {}
locals {
  y = 1
}`,
				"b.llorch.hcl": `variable "x" { default = 1 }
locals {
  y = 2
}`,
			},
			want: []string{
				`a.llorch.hcl:1:1: No value for required variable: The variable "x" has no default value, so it must be set. Use -var 'x=VALUE', a -var-file, a *.auto.llorchvars.hcl file, or the LLORCH_VAR_x environment variable, or give the variable a default.`,
				`b.llorch.hcl:1:1: Duplicate variable declaration: A variable named "x" was already declared at a.llorch.hcl:1. Variable names must be unique across all *.llorch.hcl files.`,
				`b.llorch.hcl:3:3: Duplicate local value definition: A local value named "y" was already defined at a.llorch.hcl:3. Local value names must be unique across all *.llorch.hcl files.`,
			},
		},
		{
			name: "llorch block twice and with an empty directory",
			files: map[string]string{"main.llorch.hcl": `llorch {
  state_dir = ""
}
llorch {}`},
			want: []string{
				`main.llorch.hcl:2:15: Invalid directory: state_dir must not be empty. Remove the attribute to use the default.`,
				`main.llorch.hcl:4:1: Duplicate llorch block: Only one llorch block is allowed. Another was defined at main.llorch.hcl:1.`,
			},
		},
		{
			name: "failing function call",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine = "llamacpp"
  model { ref = file("missing.txt") }
}`},
			want: []string{
				`main.llorch.hcl:3:23: Invalid function argument: Invalid value for "path" parameter: no file exists at missing.txt; relative paths are read from the configuration directory.`,
			},
		},
		{
			name: "invalid values from sensitive variables are not shown",
			files: map[string]string{"main.llorch.hcl": `variable "token" {
  default   = "hunter 2"
  sensitive = true
}
pool "chat" {
  engine = "llamacpp"
  host   = var.token
  model {
    ref    = var.token
    sha256 = var.token
  }
  restart {
    policy = var.token
  }
}`},
			want: []string{
				`main.llorch.hcl:7:12: Invalid host: (sensitive value) is not a host name or IP address. Use the address the engine should listen on, like "127.0.0.1", "0.0.0.0" or "::1".`,
				`main.llorch.hcl:9:14: Invalid model reference: (sensitive value) is not a model reference. Use "file:/path/to/model.gguf", "hf:org/repo/model.gguf" (optionally followed by @revision) or an https:// URL.`,
				`main.llorch.hcl:10:14: Invalid sha256: (sensitive value) is not a SHA-256 digest: it must be exactly 64 hexadecimal characters, and it has 8.`,
				`main.llorch.hcl:13:14: Invalid restart policy: (sensitive value) is not a restart policy. Use "always", "on-failure" or "never".`,
			},
		},
		{
			name: "every problem in a file is reported, not just the first",
			files: map[string]string{"main.llorch.hcl": `pool "chat" {
  engine   = "llamacp"
  replicas = 0
  model {
    ref    = "file:/m.gguf"
    sha256 = "x"
  }
  health {
    interval = "soon"
  }
}
pool "embed" {
  model { ref = "file:/e.gguf" }
}`},
			want: []string{
				`main.llorch.hcl:2:14: Unknown engine: There is no engine named "llamacp". Did you mean "llamacpp"? The only known engine is "llamacpp". A third-party engine needs its provider plugin, llorch-provider-llamacp, in .llorch/plugins, $LLORCH_PLUGIN_DIR or ~/.llorch/plugins.`,
				`main.llorch.hcl:3:14: Invalid replica count: replicas must be at least 1, but it is 0. To remove every replica of this pool, remove the pool block, or run llorch destroy -target='pool.chat'.`,
				`main.llorch.hcl:6:14: Invalid sha256: "x" is not a SHA-256 digest: it must be exactly 64 hexadecimal characters, and it has 1.`,
				`main.llorch.hcl:9:16: Invalid duration: "soon" is not a duration; use a number and a unit, like "30s" or "5m".`,
				`main.llorch.hcl:12:14: Missing required argument: The argument "engine" is required, but no definition was found. Set it to the provider that runs this pool, like engine = "llamacpp".`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := load(t, tc.files, tc.opts)
			checkDiags(t, diags, tc.want)
		})
	}
}
