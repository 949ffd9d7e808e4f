package render

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/fit"
	"github.com/llorch/llorch/providers"
)

// ShowFit reports whether the human plan shows rep's table: when there is
// something to see beyond a CPU machine's RAM that has room (GPUs, a
// devices block, a device that does not fit). `plan -json` carries the
// table always.
func ShowFit(rep *fit.Report) bool {
	if rep == nil {
		return false
	}
	if !rep.Machine.Discovered {
		return true
	}
	for _, d := range rep.Devices {
		if d.Kind == fit.KindGPU || !d.Fits() {
			return true
		}
	}
	return false
}

// FitTable writes rep as the human plan shows it: one row per device
// (total, used by other processes, planned, free after apply), then each
// device's shares and the pools without an estimate.
func FitTable(w *strings.Builder, rep *fit.Report) {
	fmt.Fprintf(w, "Memory fit on machine %q (estimates; see docs/memory-fit.md):\n\n", rep.Machine.Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEVICE\tTOTAL\tUSED BY OTHERS\tPLANNED\tFREE AFTER APPLY")
	for _, d := range rep.Devices {
		total, others, free := "unknown", "unknown", "unknown"
		if d.Total > 0 {
			total, others, free = config.FormatBytes(d.Total), config.FormatBytes(d.Others), config.FormatBytes(d.Free)
		}
		note := d.Name
		if d.Kind == fit.KindHost {
			note = ""
		}
		if !d.Fits() {
			note = strings.TrimSpace(note + "  does not fit: short by " + config.FormatBytes(-d.Free))
		}
		if note != "" {
			free += "\t" + note
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", d.ID(), total, others, config.FormatBytes(d.Planned), free)
	}
	tw.Flush()
	var shares strings.Builder
	tw = tabwriter.NewWriter(&shares, 0, 0, 2, ' ', 0)
	for _, d := range rep.Devices {
		for _, s := range d.Shares {
			fmt.Fprintf(tw, "  %s:\t%s\t%s\n", d.ID(), s.Pool, shareWords(s))
		}
	}
	tw.Flush()
	if shares.Len() > 0 {
		w.WriteString("\n" + shares.String())
	}
	var unknown []string
	for _, p := range rep.Pools {
		if p.Estimate == nil {
			unknown = append(unknown, fmt.Sprintf("  %s: memory unknown (%s)\n", p.Pool, p.Unknown))
		}
	}
	if len(unknown) > 0 {
		w.WriteString("\n" + strings.Join(unknown, ""))
	}
	for _, n := range rep.Machine.Notes {
		fmt.Fprintf(w, "\n  Note: %s\n", n)
	}
}

// shareWords is "2 × 1.1 GiB + 12.6 GiB mapped weights".
func shareWords(s fit.Share) string {
	out := fmt.Sprintf("%d × %s", s.Replicas, config.FormatBytes(s.PerReplica))
	if s.Mapped > 0 {
		out += " + " + config.FormatBytes(s.Mapped) + " mapped weights (page cache)"
	}
	return out
}

// Fit is the memory fit in the JSON plan.
type Fit struct {
	Machine string      `json:"machine"`
	Devices []FitDevice `json:"devices"`
	Pools   []FitPool   `json:"pools"`
	Notes   []string    `json:"notes,omitempty"`
}

// FitDevice is one row of the fit table, in bytes.
type FitDevice struct {
	ID           string     `json:"id"` // "host", "gpu0"
	Kind         string     `json:"kind"`
	Index        int        `json:"index"` // -1 for the host
	Name         string     `json:"name,omitempty"`
	Source       string     `json:"source,omitempty"`
	Total        int64      `json:"total_bytes"` // 0: unknown
	Used         int64      `json:"used_bytes"`
	UsedByOthers int64      `json:"used_by_others_bytes"`
	Planned      int64      `json:"planned_bytes"`
	Free         int64      `json:"free_after_apply_bytes"`
	Fits         bool       `json:"fits"`
	Shares       []FitShare `json:"shares"`
}

// FitShare is one pool's replicas on one device.
type FitShare struct {
	Pool       string `json:"pool"`
	Replicas   int    `json:"replicas"`
	PerReplica int64  `json:"per_replica_bytes"`
	Mapped     int64  `json:"mapped_bytes,omitempty"`
	Bytes      int64  `json:"bytes"`
}

// FitPool is one pool's estimate per replica and the formula's inputs, or
// why there is none.
type FitPool struct {
	Pool     string       `json:"pool"`
	Replicas int          `json:"replicas"`
	Fit      string       `json:"fit"` // error | warn
	Estimate *FitEstimate `json:"estimate,omitempty"`
	Unknown  string       `json:"unknown,omitempty"`
}

// FitEstimate is providers.MemoryEstimate in JSON.
type FitEstimate struct {
	Host       FitPart   `json:"host"`
	GPUs       []FitPart `json:"gpus"`
	MappedFile string    `json:"mapped_file,omitempty"`
	Inputs     FitInputs `json:"inputs"`
}

// FitPart is one device's share of one replica.
type FitPart struct {
	Index   int   `json:"index"`
	Weights int64 `json:"weights_bytes"`
	KVCache int64 `json:"kv_cache_bytes"`
	Compute int64 `json:"compute_bytes"`
	Other   int64 `json:"other_bytes"`
	Total   int64 `json:"total_bytes"`
}

// FitInputs are the estimate's inputs.
type FitInputs struct {
	Estimator      string    `json:"estimator"`
	Layers         int       `json:"n_layers"`
	GPULayers      int       `json:"n_gpu_layers"`
	Ctx            int       `json:"ctx"`
	Parallel       int       `json:"parallel"`
	CacheTypeK     string    `json:"cache_type_k"`
	CacheTypeV     string    `json:"cache_type_v"`
	TensorSplit    []float64 `json:"tensor_split,omitempty"`
	FlashAttention bool      `json:"flash_attention"`
	Mmap           bool      `json:"mmap"`
	BatchSize      int       `json:"batch_size"`
	UBatchSize     int       `json:"ubatch_size"`
}

func fitPart(d providers.DeviceMemory) FitPart {
	return FitPart{Index: d.Index, Weights: d.Weights, KVCache: d.KVCache, Compute: d.Compute, Other: d.Other, Total: d.Total()}
}

// NewFit is rep in the JSON plan's shape; nil for no report.
func NewFit(rep *fit.Report) *Fit {
	if rep == nil {
		return nil
	}
	out := &Fit{Machine: rep.Machine.Name, Devices: []FitDevice{}, Pools: []FitPool{}, Notes: rep.Machine.Notes}
	for _, d := range rep.Devices {
		fd := FitDevice{ID: d.ID(), Kind: d.Kind, Index: d.Index, Name: d.Name, Source: d.Source, Total: d.Total,
			Used: d.Used, UsedByOthers: d.Others, Planned: d.Planned, Free: d.Free, Fits: d.Fits(), Shares: []FitShare{}}
		for _, s := range d.Shares {
			fd.Shares = append(fd.Shares, FitShare{Pool: s.Pool, Replicas: s.Replicas, PerReplica: s.PerReplica, Mapped: s.Mapped, Bytes: s.Bytes})
		}
		out.Devices = append(out.Devices, fd)
	}
	for _, p := range rep.Pools {
		fp := FitPool{Pool: p.Pool, Replicas: p.Replicas, Fit: p.Mode, Unknown: p.Unknown}
		if e := p.Estimate; e != nil {
			in := e.Inputs
			fe := &FitEstimate{Host: fitPart(e.Host), GPUs: []FitPart{}, MappedFile: e.MappedFile, Inputs: FitInputs{
				Estimator: in.Estimator, Layers: in.Layers, GPULayers: in.GPULayers, Ctx: in.Ctx, Parallel: in.Parallel,
				CacheTypeK: in.CacheTypeK, CacheTypeV: in.CacheTypeV, TensorSplit: in.TensorSplit,
				FlashAttention: in.FlashAttention, Mmap: in.Mmap, BatchSize: in.BatchSize, UBatchSize: in.UBatchSize,
			}}
			for _, g := range e.GPUs {
				fe.GPUs = append(fe.GPUs, fitPart(g))
			}
			fp.Estimate = fe
		}
		out.Pools = append(out.Pools, fp)
	}
	return out
}
