package fit

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/providers"
)

// Pool is one configured pool instance as the fit needs it.
type Pool struct {
	Addr     string
	Replicas int
	// Running counts the replicas running now: when the machine's devices
	// were measured, their memory is part of what nvidia-smi and
	// /proc/meminfo call used, and is not "used by others".
	Running  int
	Devices  []int // the pool's devices: nil unset, empty CPU only
	Estimate *providers.MemoryEstimate
	Unknown  string // why Estimate is nil
	Mode     string // config.FitError or config.FitWarn
	// Range is the pool block, DevicesRange its devices attribute (the
	// block when unset): where diagnostics point.
	Range, DevicesRange hcl.Range
}

// Report is the fit of a plan on one machine.
type Report struct {
	Machine *Machine
	Devices []DeviceRow
	Pools   []PoolRow
	Diags   hcl.Diagnostics
}

// DeviceRow is one device's line of the fit table.
type DeviceRow struct {
	Device
	// Others is what other processes use: Used, less the estimate of this
	// configuration's replicas running now when the devices were measured.
	Others  int64
	Shares  []Share // one per pool with memory here, biggest first
	Planned int64   // the shares added up
	Free    int64   // Total - Others - Planned; negative when it does not fit
}

// Fits reports whether the planned shares fit; a device of unknown size
// always does.
func (r DeviceRow) Fits() bool { return r.Total == 0 || r.Free >= 0 }

// Share is what one pool's replicas take on one device.
type Share struct {
	Pool       string
	Replicas   int
	PerReplica int64 // one replica's anonymous memory: KV cache, compute, other, weights on a GPU
	// Mapped is the model file's pages (host only): mmap'd weights, in the
	// page cache once per file and machine, whatever the replica count;
	// zero when another pool maps the same file and is charged for it.
	Mapped int64
	Bytes  int64 // Replicas × PerReplica + Mapped
}

// PoolRow is one pool's estimate, or why there is none.
type PoolRow struct {
	Pool     string
	Replicas int
	Mode     string
	Estimate *providers.MemoryEstimate
	Unknown  string
}

// Check adds up the pools' estimates per device of m and reports the
// devices they would overcommit. pools must be sorted by address (the
// first pool mapping a file is charged for its pages).
func Check(m *Machine, pools []Pool) *Report {
	rep := &Report{Machine: m}
	rows := make([]DeviceRow, len(m.Devices))
	byID := map[string]int{}
	for i, d := range m.Devices {
		rows[i] = DeviceRow{Device: d, Others: d.Used}
		byID[d.ID()] = i
	}
	gpus := m.GPUs()
	mapped := map[string]bool{}
	for _, p := range pools {
		rep.Pools = append(rep.Pools, PoolRow{Pool: p.Addr, Replicas: p.Replicas, Mode: p.Mode, Estimate: p.Estimate, Unknown: p.Unknown})
		e := p.Estimate
		if e == nil {
			continue
		}
		// Each GPU part goes to the GPU the pool names (or, with devices
		// unset, to the machine's GPU of that ordinal); a part for a GPU
		// the machine lacks is a diagnostic, or, when the pool named no
		// GPU and the machine has none, the host's: a CPU build runs it
		// there.
		host := e.Host
		var onHostFromGPU int64
		for _, g := range e.GPUs {
			var dev Device
			var ok bool
			if p.Devices != nil {
				dev, ok = m.GPU(g.Index)
			} else if g.Index >= 0 && g.Index < len(gpus) {
				dev, ok = gpus[g.Index], true
			}
			if !ok {
				if p.Devices == nil && len(gpus) == 0 {
					onHostFromGPU += g.Total()
					continue
				}
				rep.Diags = append(rep.Diags, unknownGPU(p, g.Index, gpus))
				continue
			}
			addShare(&rows[byID[dev.ID()]], p, g.Total(), 0)
		}
		if onHostFromGPU > 0 {
			m.Notes = appendOnce(m.Notes, fmt.Sprintf("%s offloads layers, but the machine has no GPU: counted in host memory", p.Addr))
		}
		perReplica := host.KVCache + host.Compute + host.Other + onHostFromGPU
		var pages int64
		switch {
		case e.MappedFile == "":
			perReplica += host.Weights // read into anonymous memory (--no-mmap)
		case !mapped[e.MappedFile]:
			mapped[e.MappedFile] = true
			pages = host.Weights
		}
		addShare(&rows[0], p, perReplica, pages)
	}
	for i := range rows {
		r := &rows[i]
		slices.SortStableFunc(r.Shares, func(a, b Share) int {
			switch {
			case a.Bytes > b.Bytes:
				return -1
			case a.Bytes < b.Bytes:
				return 1
			}
			return strings.Compare(a.Pool, b.Pool)
		})
		r.Free = r.Total - r.Others - r.Planned
	}
	// What this configuration's running replicas use is in Used when the
	// devices were measured: take it out of "used by others".
	if m.Discovered {
		for _, p := range pools {
			if p.Estimate == nil || p.Running == 0 {
				continue
			}
			n := int64(min(p.Running, p.Replicas))
			for i := range rows {
				for _, s := range rows[i].Shares {
					if s.Pool == p.Addr {
						// page cache is not in host Used (MemAvailable counts it)
						rows[i].Others -= n * s.PerReplica
					}
				}
			}
		}
		for i := range rows {
			rows[i].Others = max(rows[i].Others, 0)
			rows[i].Free = rows[i].Total - rows[i].Others - rows[i].Planned
		}
	}
	rep.Devices = rows
	byAddr := map[string]Pool{}
	for _, p := range pools {
		byAddr[p.Addr] = p
	}
	for _, r := range rows {
		if !r.Fits() {
			rep.Diags = append(rep.Diags, overcommitted(r, rows, byAddr))
		}
	}
	return rep
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func addShare(r *DeviceRow, p Pool, perReplica, mapped int64) {
	if perReplica == 0 && mapped == 0 {
		return
	}
	s := Share{Pool: p.Addr, Replicas: p.Replicas, PerReplica: perReplica, Mapped: mapped,
		Bytes: int64(p.Replicas)*perReplica + mapped}
	r.Shares = append(r.Shares, s)
	r.Planned += s.Bytes
}

func severity(mode string) hcl.DiagnosticSeverity {
	if mode == config.FitWarn {
		return hcl.DiagWarning
	}
	return hcl.DiagError
}

func unknownGPU(p Pool, index int, gpus []Device) *hcl.Diagnostic {
	have := "the machine has no GPU"
	if len(gpus) > 0 {
		var ids []string
		for _, g := range gpus {
			ids = append(ids, strconv.Itoa(g.Index))
		}
		have = fmt.Sprintf("the machine has GPUs %s (%s)", strings.Join(ids, ", "), gpus[0].Source)
	}
	return &hcl.Diagnostic{
		Severity: severity(p.Mode),
		Summary:  "Unknown device",
		Detail: fmt.Sprintf("%s puts layers on GPU %d, but %s. Use one of those in devices, or devices = [] for the CPU.",
			p.Addr, index, have),
		Subject: p.DevicesRange.Ptr(),
	}
}

// deviceName is how a diagnostic names a device: "GPU 0 (RTX 4090)",
// "host memory".
func deviceName(d Device) string {
	if d.Kind == KindHost {
		return "host memory"
	}
	if d.Name != "" {
		return fmt.Sprintf("GPU %d (%s)", d.Index, d.Name)
	}
	return fmt.Sprintf("GPU %d", d.Index)
}

// overcommitted is the diagnostic of a device the shares do not fit: at
// the block of the biggest consumer whose fit mode is "error" (a warning
// when every consumer's is "warn"), naming the biggest consumers and what
// would make the biggest one fit.
func overcommitted(r DeviceRow, rows []DeviceRow, pools map[string]Pool) *hcl.Diagnostic {
	need := -r.Free
	subject := pools[r.Shares[0].Pool]
	sev := hcl.DiagWarning
	for _, s := range r.Shares {
		if p := pools[s.Pool]; p.Mode != config.FitWarn {
			sev, subject = hcl.DiagError, p
			break
		}
	}
	var top []string
	for i, s := range r.Shares {
		if i == 3 {
			top = append(top, fmt.Sprintf("%d more", len(r.Shares)-3))
			break
		}
		top = append(top, fmt.Sprintf("%s %s", s.Pool, shareText(s)))
	}
	detail := fmt.Sprintf("%s has %s, %s of it used by other processes; the planned replicas need %s, %s more than is free. "+
		"The biggest consumers: %s.",
		deviceName(r.Device), config.FormatBytes(r.Total), config.FormatBytes(r.Others), config.FormatBytes(r.Planned),
		config.FormatBytes(need), strings.Join(top, ", "))
	if fixes := remedies(r, rows, pools[r.Shares[0].Pool], r.Shares[0], need); len(fixes) > 0 {
		detail += fmt.Sprintf(" To make %s fit, any of: %s.", r.Shares[0].Pool, strings.Join(fixes, "; "))
	}
	if sev == hcl.DiagError {
		detail += ` Set fit = "warn" in the pool to plan anyway.`
	}
	summary := "Pools do not fit " + deviceName(r.Device)
	if sev == hcl.DiagWarning {
		summary = "Pools may not fit " + deviceName(r.Device)
	}
	return &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: subject.Range.Ptr()}
}

// shareText is a share in words: "(2 replicas × 4.1 GiB)", "(1 replica,
// 4.1 GiB, and 12.6 GiB of mapped weights)".
func shareText(s Share) string {
	reps := "1 replica"
	if s.Replicas != 1 {
		reps = fmt.Sprintf("%d replicas", s.Replicas)
	}
	out := fmt.Sprintf("%s × %s", reps, config.FormatBytes(s.PerReplica))
	if s.Mapped > 0 {
		out += fmt.Sprintf(" + %s mapped weights", config.FormatBytes(s.Mapped))
	}
	return "(" + out + ")"
}

// remedies says what would make share s of pool p fit device r, short by
// need bytes: fewer offloaded layers, a smaller ctx, fewer replicas,
// another device. Each is computed from p's estimate on its own.
func remedies(r DeviceRow, rows []DeviceRow, p Pool, s Share, need int64) []string {
	e := p.Estimate
	if e == nil {
		return nil
	}
	in := e.Inputs
	var part providers.DeviceMemory
	if r.Kind == KindHost {
		part = e.Host
	} else {
		for _, g := range e.GPUs {
			if g.Index == r.Index || (p.Devices == nil && len(e.GPUs) == 1) {
				part = g
			}
		}
	}
	var out []string
	reps := int64(max(p.Replicas, 1))
	if r.Kind == KindGPU && in.GPULayers > 0 {
		var gpuWeights int64
		for _, g := range e.GPUs {
			gpuWeights += g.Weights
		}
		if gpuWeights > 0 && part.Weights > 0 {
			layers := float64(in.GPULayers) * float64(part.Weights) / float64(gpuWeights)
			perLayer := float64(part.Weights+part.KVCache) / layers
			cut := int(math.Ceil(float64(need) / (perLayer * float64(reps))))
			if cut < in.GPULayers {
				out = append(out, fmt.Sprintf("n_gpu_layers = %d (now %d; the rest run on the CPU)", in.GPULayers-cut, in.GPULayers))
			}
		}
	}
	if kv := part.KVCache * reps; in.Ctx > 0 && kv > need {
		ctx := int(float64(in.Ctx)*(1-float64(need)/float64(kv))) / 256 * 256
		if ctx >= 256 {
			out = append(out, fmt.Sprintf("ctx = %d (now %d)", ctx, in.Ctx))
		}
	}
	if p.Replicas > 1 && s.PerReplica > 0 {
		fewer := int64(math.Ceil(float64(need) / float64(s.PerReplica)))
		if fewer < int64(p.Replicas) {
			out = append(out, fmt.Sprintf("replicas = %d (now %d)", int64(p.Replicas)-fewer, p.Replicas))
		}
	}
	if part.Weights > 0 && (r.Kind == KindGPU || e.MappedFile == "" || s.Mapped > 0) && part.Weights >= need/2 {
		out = append(out, fmt.Sprintf("a smaller quantization of the model (its weights take %s here)", config.FormatBytes(part.Weights)))
	}
	if r.Kind == KindGPU {
		var others []string
		for _, o := range rows {
			if o.Kind == KindGPU && o.Index != r.Index && o.Total > 0 && o.Free >= s.Bytes {
				others = append(others, strconv.Itoa(o.Index))
			}
		}
		if len(others) > 0 {
			out = append(out, fmt.Sprintf("another GPU with room: devices = [%s]", strings.Join(others, "] or [")))
		}
	} else {
		for _, o := range rows {
			if o.Kind == KindGPU && o.Total > 0 && o.Free > 0 {
				out = append(out, fmt.Sprintf("offload layers to GPU %d, which has %s free (devices, n_gpu_layers)", o.Index, config.FormatBytes(o.Free)))
				break
			}
		}
	}
	return out
}
