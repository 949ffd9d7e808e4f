# The demo runs offline, in seconds: the fake llama-server built from this
# repository (internal/fakeengine) stands in for llama.cpp and serves a
# 544-byte GGUF model. `make demo` builds both and applies this directory;
# examples/quickstart is the same pools on the real llama-server.

variable "engine" {
  type        = string
  default     = "fake-llama-server"
  description = "The llama-server binary: a path, or a name looked up on PATH."
}

provider "llamacpp" {
  binary = var.engine
}

pool "chat" {
  engine   = "llamacpp"
  replicas = 2
  port     = 18080 # r0 on 18080, r1 on 18081
  devices  = []    # CPU only: --n-gpu-layers 0
  ctx      = 256

  model {
    ref = "file:models/demo.gguf"
  }

  flags  = ["--parallel", "2"]
  labels = { team = "demo", tier = "chat" }

  health {
    interval      = "50ms"
    start_timeout = "30s"
  }

  restart {
    initial_backoff = "200ms"
  }

  drain {
    deadline = "5s"
  }
}

pool "embed" {
  for_each = toset(["bge", "e5"])
  engine   = "llamacpp"
  devices  = [] # ports are picked at apply time and recorded in the state

  model {
    ref = "file:models/demo.gguf"
  }

  labels = { team = "demo", model = each.key }
}
