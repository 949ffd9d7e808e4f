package fit

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/providers"
)

// machine is a host with 64 GiB (8 used) and two 24 GiB GPUs (1 used on
// GPU 0), given by a devices block.
func machine() *Machine {
	return &Machine{Name: "local", Devices: []Device{
		{Kind: KindHost, Index: -1, Name: "host", Total: 64 * gib, Used: 8 * gib},
		{Kind: KindGPU, Index: 0, Name: "RTX 4090", Total: 24 * gib, Used: gib},
		{Kind: KindGPU, Index: 1, Name: "RTX 4090", Total: 24 * gib},
	}}
}

// gpuEstimate is a 7B-like replica: all 33 layers on one GPU.
func gpuEstimate(index int, file string) *providers.MemoryEstimate {
	return &providers.MemoryEstimate{
		GPUs:       []providers.DeviceMemory{{Index: index, Weights: 12 * gib, KVCache: 2 * gib, Compute: gib / 2}},
		Host:       providers.DeviceMemory{Index: -1, Weights: gib / 4, Compute: gib / 8, Other: gib / 8},
		MappedFile: file,
		Inputs:     providers.MemoryInputs{Layers: 32, GPULayers: 33, Ctx: 4096, Parallel: 1},
	}
}

func poolAt(addr string, line int, replicas int, devices []int, e *providers.MemoryEstimate) Pool {
	r := hcl.Range{Filename: "main.llorch.hcl", Start: hcl.Pos{Line: line, Column: 1}, End: hcl.Pos{Line: line, Column: 10}}
	return Pool{Addr: addr, Replicas: replicas, Devices: devices, Estimate: e, Mode: config.FitError, Range: r, DevicesRange: r}
}

func TestCheckFits(t *testing.T) {
	rep := Check(machine(), []Pool{
		poolAt("pool.a", 1, 1, []int{0}, gpuEstimate(0, "/m/7b.gguf")),
		poolAt("pool.b", 9, 1, []int{1}, gpuEstimate(1, "/m/7b.gguf")),
		{Addr: "pool.c", Replicas: 3, Unknown: "model not staged yet; run apply once or use a file: ref", Mode: config.FitError},
	})
	if len(rep.Diags) != 0 {
		t.Fatalf("diags: %v", rep.Diags)
	}
	host, g0, g1 := rep.Devices[0], rep.Devices[1], rep.Devices[2]
	// Both pools map one file: its pages are charged once, to pool.a.
	if len(host.Shares) != 2 || host.Planned != 2*(gib/4)+gib/4 || host.Shares[0].Mapped != gib/4 || host.Shares[1].Mapped != 0 {
		t.Errorf("host = %+v", host)
	}
	if g0.Planned != 14*gib+gib/2 || g0.Free != 24*gib-gib-g0.Planned || !g0.Fits() || g1.Free != 24*gib-g1.Planned {
		t.Errorf("gpu rows = %+v / %+v", g0, g1)
	}
	if len(rep.Pools) != 3 || rep.Pools[2].Unknown == "" {
		t.Errorf("pools = %+v", rep.Pools)
	}
}

func TestCheckDoesNotFit(t *testing.T) {
	e := gpuEstimate(0, "/m/7b.gguf")
	rep := Check(machine(), []Pool{poolAt("pool.big", 4, 2, []int{0}, e), poolAt("pool.small", 20, 1, []int{1}, gpuEstimate(1, "/m/other.gguf"))})
	if len(rep.Diags) != 1 {
		t.Fatalf("diags: %v", rep.Diags)
	}
	d := rep.Diags[0]
	want := "GPU 0 (RTX 4090) has 24.0 GiB, 1.0 GiB of it used by other processes; the planned replicas need 29.0 GiB, 6.0 GiB more than is free. " +
		"The biggest consumers: pool.big (2 replicas × 14.5 GiB). To make pool.big fit, any of: n_gpu_layers = 25 (now 33; the rest run on the CPU); " +
		"replicas = 1 (now 2); a smaller quantization of the model (its weights take 12.0 GiB here). " +
		`Set fit = "warn" in the pool to plan anyway.`
	if d.Severity != hcl.DiagError || d.Summary != "Pools do not fit GPU 0 (RTX 4090)" || d.Detail != want || d.Subject.Start.Line != 4 {
		t.Errorf("diagnostic = %s: %s (line %d)\nwant detail %s", d.Summary, d.Detail, d.Subject.Start.Line, want)
	}

	t.Run("a smaller ctx and another GPU", func(t *testing.T) {
		e := gpuEstimate(0, "/m/7b.gguf")
		e.GPUs[0].KVCache = 11 * gib // a long context
		rep := Check(machine(), []Pool{poolAt("pool.long", 4, 1, []int{0}, e)})
		if len(rep.Diags) != 1 || !strings.Contains(rep.Diags[0].Detail, "ctx = 3840 (now 4096)") ||
			!strings.Contains(rep.Diags[0].Detail, "another GPU with room: devices = [1]") {
			t.Errorf("diags: %v", rep.Diags)
		}
	})
	t.Run(`fit = "warn" makes it a warning`, func(t *testing.T) {
		p := poolAt("pool.big", 4, 2, []int{0}, e)
		p.Mode = config.FitWarn
		rep := Check(machine(), []Pool{p})
		if len(rep.Diags) != 1 || rep.Diags[0].Severity != hcl.DiagWarning || rep.Diags[0].Summary != "Pools may not fit GPU 0 (RTX 4090)" ||
			strings.Contains(rep.Diags[0].Detail, `Set fit = "warn"`) {
			t.Errorf("diags: %v", rep.Diags)
		}
	})
	t.Run("the error points at a pool whose fit mode is error", func(t *testing.T) {
		p := poolAt("pool.big", 4, 2, []int{0}, e)
		p.Mode = config.FitWarn
		rep := Check(machine(), []Pool{p, poolAt("pool.strict", 30, 1, []int{0}, gpuEstimate(0, "/m/7b.gguf"))})
		if len(rep.Diags) != 1 || rep.Diags[0].Severity != hcl.DiagError || rep.Diags[0].Subject.Start.Line != 30 {
			t.Errorf("diags: %v", rep.Diags)
		}
	})
}

func TestCheckDevices(t *testing.T) {
	t.Run("a GPU the machine lacks", func(t *testing.T) {
		rep := Check(machine(), []Pool{poolAt("pool.x", 7, 1, []int{5}, gpuEstimate(5, "/m/7b.gguf"))})
		want := "pool.x puts layers on GPU 5, but the machine has GPUs 0, 1 (). Use one of those in devices, or devices = [] for the CPU."
		if len(rep.Diags) != 1 || rep.Diags[0].Summary != "Unknown device" || rep.Diags[0].Detail != want {
			t.Errorf("diags: %v", rep.Diags)
		}
	})
	t.Run("devices unset: the engine's ordinals are the machine's GPUs", func(t *testing.T) {
		rep := Check(machine(), []Pool{poolAt("pool.x", 7, 1, nil, gpuEstimate(0, "/m/7b.gguf"))})
		if len(rep.Diags) != 0 || rep.Devices[1].Planned == 0 {
			t.Errorf("report = %+v", rep)
		}
	})
	t.Run("devices unset, no GPU: the host runs the layers", func(t *testing.T) {
		m := machine()
		m.Devices = m.Devices[:1]
		rep := Check(m, []Pool{poolAt("pool.x", 7, 1, nil, gpuEstimate(0, "/m/7b.gguf"))})
		if len(rep.Diags) != 0 || rep.Devices[0].Shares[0].PerReplica != gib/4+14*gib+gib/2 || len(m.Notes) != 1 {
			t.Errorf("report = %+v, notes %q", rep.Devices, m.Notes)
		}
	})
	t.Run("running replicas are not other processes", func(t *testing.T) {
		m := machine()
		m.Discovered = true
		m.Devices[1].Used = 15 * gib // one replica of pool.a (14.5 GiB) runs
		p := poolAt("pool.a", 1, 1, []int{0}, gpuEstimate(0, "/m/7b.gguf"))
		p.Running = 1
		rep := Check(m, []Pool{p})
		if len(rep.Diags) != 0 || rep.Devices[1].Others != gib/2 {
			t.Errorf("gpu 0 = %+v, diags %v", rep.Devices[1], rep.Diags)
		}
	})
}
