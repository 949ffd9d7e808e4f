package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/llorch/llorch/internal/didyoumean"
)

// Devices is the top-level devices {} block: the machine's GPUs and host
// memory as plan is to assume them, instead of asking nvidia-smi and
// /proc/meminfo. It is for CI runners that plan for machines they are
// not, and for tests.
//
// The gpu blocks are the machine's GPUs, all of them: a devices block
// without any says the machine has none. Without a host block, host
// memory is still read from /proc/meminfo.
type Devices struct {
	GPUs      []GPU
	Host      *HostMemory
	DeclRange hcl.Range
}

// GPU is one gpu {} block of devices.
type GPU struct {
	Index       int
	Name        string
	MemoryTotal int64 // bytes
	MemoryUsed  int64 // bytes used by other processes
	DeclRange   hcl.Range
	Pos         string // "main.llorch.hcl:5", relative to the configuration directory
}

// HostMemory is the host {} block of devices.
type HostMemory struct {
	MemoryTotal int64
	MemoryUsed  int64
	DeclRange   hcl.Range
	Pos         string
}

// GPU returns the gpu block with index i.
func (d *Devices) GPU(i int) (GPU, bool) {
	for _, g := range d.GPUs {
		if g.Index == i {
			return g, true
		}
	}
	return GPU{}, false
}

// Fit modes: what plan does with a pool that does not fit.
const (
	FitError = "error" // the plan fails (default)
	FitWarn  = "warn"  // the plan warns and goes on
)

var fitModes = []string{FitError, FitWarn}

var devicesSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{{Type: "gpu"}, {Type: "host"}},
}

var gpuSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "index", Required: true}, {Name: "name"}, {Name: "memory_total", Required: true}, {Name: "memory_used"},
	},
}

var hostSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "memory_total", Required: true}, {Name: "memory_used"}},
}

// decodeDevices decodes the devices blocks (at most one).
func (l *loader) decodeDevices(blocks []*hcl.Block) {
	if len(blocks) == 0 {
		return
	}
	for _, b := range blocks[1:] {
		l.errorf(b.DefRange.Ptr(), "Duplicate devices block",
			"Only one devices block is allowed. Another was defined at %s.", l.pos(blocks[0].DefRange))
	}
	b := blocks[0]
	content, diags := b.Body.Content(devicesSchema)
	l.diags = append(l.diags, diags...)
	devs := &Devices{DeclRange: b.DefRange}
	seen := map[int]hcl.Range{}
	for _, gb := range content.Blocks {
		switch gb.Type {
		case "gpu":
			g, ok := l.gpuBlock(gb)
			if !ok {
				continue
			}
			if prev, dup := seen[g.Index]; dup {
				l.errorf(gb.DefRange.Ptr(), "Duplicate GPU index",
					"GPU %d was already described at %s. Each gpu block describes one GPU; give each its own index, as nvidia-smi numbers them.",
					g.Index, l.pos(prev))
				continue
			}
			seen[g.Index] = gb.DefRange
			devs.GPUs = append(devs.GPUs, g)
		case "host":
			if devs.Host != nil {
				l.errorf(gb.DefRange.Ptr(), "Duplicate host block",
					"Only one host block is allowed in devices. Another was defined at %s.", l.pos(devs.Host.DeclRange))
				continue
			}
			total, used, ok := l.memoryAttrs(gb)
			if ok {
				devs.Host = &HostMemory{MemoryTotal: total, MemoryUsed: used, DeclRange: gb.DefRange, Pos: l.pos(gb.DefRange)}
			}
		}
	}
	l.cfg.Devices = devs
}

func (l *loader) gpuBlock(b *hcl.Block) (GPU, bool) {
	content, diags := b.Body.Content(gpuSchema)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return GPU{}, false
	}
	g := GPU{DeclRange: b.DefRange, Pos: l.pos(b.DefRange)}
	ok := true
	a := content.Attributes["index"]
	if v, good := l.devicesValue(a, cty.Number); good {
		n, whole := wholeInt(v)
		if !whole || n < 0 {
			l.errorf(a.Expr.Range().Ptr(), "Invalid GPU index",
				"index is %s, but GPU indices are whole numbers, 0 or more, as nvidia-smi numbers the GPUs.", formatNumber(v))
			ok = false
		}
		g.Index = n
	} else {
		ok = false
	}
	if a, found := content.Attributes["name"]; found {
		if v, good := l.devicesValue(a, cty.String); good {
			g.Name = v.AsString()
		} else {
			ok = false
		}
	}
	total, used, good := l.memoryAttrs(b)
	g.MemoryTotal, g.MemoryUsed = total, used
	return g, ok && good
}

// memoryAttrs reads memory_total and memory_used of a gpu or host block.
func (l *loader) memoryAttrs(b *hcl.Block) (total, used int64, ok bool) {
	schema := hostSchema
	if b.Type == "gpu" {
		schema = gpuSchema
	}
	content, diags := b.Body.Content(schema)
	if b.Type == "host" {
		l.diags = append(l.diags, diags...) // gpuBlock reported the gpu's
	}
	if diags.HasErrors() {
		return 0, 0, false
	}
	ok = true
	read := func(name string) int64 {
		a, found := content.Attributes[name]
		if !found {
			return 0
		}
		n, good := l.byteSize(a)
		ok = ok && good
		return n
	}
	total, used = read("memory_total"), read("memory_used")
	if ok && total == 0 {
		l.errorf(content.Attributes["memory_total"].Expr.Range().Ptr(), "Invalid memory size",
			"memory_total is 0: a %s has some memory. Give its size, like \"24GiB\".", b.Type)
		ok = false
	}
	if ok && used > total {
		l.errorf(content.Attributes["memory_used"].Expr.Range().Ptr(), "Invalid memory size",
			"memory_used (%s) is more than memory_total (%s).", FormatBytes(used), FormatBytes(total))
		ok = false
	}
	return total, used, ok
}

// devicesValue evaluates a devices attribute (variables allowed) and
// converts it to want.
func (l *loader) devicesValue(a *hcl.Attribute, want cty.Type) (cty.Value, bool) {
	v, diags := a.Expr.Value(l.topCtx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(unmarked(v), want)
	if err != nil || cv.IsNull() || !cv.IsWhollyKnown() {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type",
			"Inappropriate value for attribute %q: %s is required.", a.Name, want.FriendlyName())
		return cty.NilVal, false
	}
	return cv, true
}

// byteSize reads a size attribute: a number of bytes, or a string like
// "24GiB".
func (l *loader) byteSize(a *hcl.Attribute) (int64, bool) {
	v, diags := a.Expr.Value(l.topCtx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return 0, false
	}
	v = unmarked(v)
	var s string
	switch {
	case v.IsNull() || !v.IsWhollyKnown():
	case v.Type() == cty.Number:
		s = v.AsBigFloat().Text('f', -1)
	case v.Type() == cty.String:
		s = v.AsString()
	}
	n, err := ParseBytes(s)
	if err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Invalid memory size", "%s: %s.", a.Name, err)
		return 0, false
	}
	return n, true
}

// byteUnits are the units ParseBytes accepts.
var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
}

var byteUnitNames = []string{"B", "KiB", "MiB", "GiB", "TiB", "KB", "MB", "GB", "TB"}

// ParseBytes reads a memory size: a number of bytes ("1073741824"), or a
// number and a unit ("24GiB", "1.5 GiB", "512MiB", "16GB"); KiB, MiB, GiB
// and TiB are powers of 1024, KB, MB, GB and TB powers of 1000.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf(`a size is required, like "24GiB" or a number of bytes`)
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(t[:i]), strings.TrimSpace(t[i:])
	}
	mult, ok := byteUnits[unit]
	if !ok {
		hint := ""
		near := didyoumean.NameSuggestion(unit, byteUnitNames)
		for _, u := range byteUnitNames {
			if strings.EqualFold(u, unit) {
				near = u // units are case-sensitive: "gb" is not "Gb"
			}
		}
		if near != "" {
			hint = fmt.Sprintf(" Did you mean %q?", near)
		}
		return 0, fmt.Errorf("%q has an unknown unit %q.%s Use one of %s", s, unit, hint, strings.Join(byteUnitNames, ", "))
	}
	f, _, err := big.ParseFloat(num, 10, 128, big.ToNearestEven)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: write a number and a unit, like \"24GiB\"", s)
	}
	if f.Sign() < 0 {
		return 0, fmt.Errorf("%q is negative; a memory size is 0 or more", s)
	}
	f.Mul(f, new(big.Float).SetInt64(mult))
	if f.Cmp(new(big.Float).SetInt64(math.MaxInt64)) > 0 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	n, _ := f.Int64()
	return n, nil
}

// FormatBytes writes n in binary units with one decimal ("23.5 GiB").
func FormatBytes(n int64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return neg + strconv.FormatInt(n, 10) + " B"
	}
	return neg + strconv.FormatFloat(v, 'f', 1, 64) + " " + units[u]
}

// checkPoolDevices checks every pool's devices against the devices block's
// GPUs, when there is one.
func (l *loader) checkPoolDevices() {
	devs := l.cfg.Devices
	if devs == nil {
		return
	}
	var have []string
	for _, g := range devs.GPUs {
		have = append(have, strconv.Itoa(g.Index))
	}
	for _, p := range l.cfg.Pools {
		for i, d := range p.Devices {
			if _, ok := devs.GPU(d); ok {
				continue
			}
			which := "describes no GPU"
			if len(have) > 0 {
				which = "describes GPUs " + strings.Join(have, ", ")
			}
			l.errorf(p.Range("devices").Ptr(), "Unknown device",
				"%s: devices[%d] is GPU %d, but the devices block at %s %s. Use one of those, or add a gpu block for it.",
				p.Addr, i, d, l.pos(devs.DeclRange), which)
		}
	}
}
