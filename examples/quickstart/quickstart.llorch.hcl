# The demo pools on the real llama.cpp llama-server.
#
#   llorch -chdir=examples/quickstart plan
#   llorch -chdir=examples/quickstart apply
#
# llama-server must be on PATH (or set binary to its path), or replace the
# binary line with a source {} block to have llorch build it from git.

variable "hf_model" {
  type        = string
  default     = "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf"
  description = "The chat model: file:/path, https://… or hf:org/repo/file.gguf[@revision]."
}

variable "api_key" {
  type        = string
  default     = null
  sensitive   = true
  description = "Bearer token llama-server requires on /v1/*; null (the default) for none."
}

provider "llamacpp" {
  binary = "llama-server"
  # source {
  #   git  = "https://github.com/ggml-org/llama.cpp"
  #   ref  = "b6600"
  #   cuda = "auto"
  # }
}

pool "chat" {
  engine   = "llamacpp"
  replicas = 2
  port     = 8080
  ctx      = 4096
  flags    = ["--parallel", "4"]
  labels   = { team = "search" }

  model {
    ref = var.hf_model
  }

  health {
    start_timeout = "300s" # first start downloads and loads the model
  }

  llamacpp {
    n_gpu_layers = 99
    api_key      = var.api_key
  }
}

pool "embed" {
  for_each = toset(["bge"])
  engine   = "llamacpp"
  devices  = []
  flags    = ["--embeddings"]

  model {
    ref = "hf:CompendiumLabs/bge-small-en-v1.5-gguf/bge-small-en-v1.5-q8_0.gguf"
  }
}
