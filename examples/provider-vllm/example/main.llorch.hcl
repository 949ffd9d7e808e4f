# A pool served by the example vLLM provider. `make example-provider` builds
# the plugin into a plugin directory and runs init, providers, validate and
# plan against this file.

provider "vllm" {
  binary = "vllm"
}

pool "qwen" {
  engine   = "vllm"
  replicas = 1
  port     = 8000
  devices  = [0, 1]
  ctx      = 8192

  model {
    ref = "hf:Qwen/Qwen2.5-7B-Instruct"
  }

  vllm {
    tensor_parallel_size   = 2
    gpu_memory_utilization = 0.9
  }
}
