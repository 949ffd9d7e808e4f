package fit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
)

// Device kinds.
const (
	KindHost = "host"
	KindGPU  = "gpu"
)

// Device is one memory of the machine: host RAM or a GPU.
type Device struct {
	Kind  string // KindHost or KindGPU
	Index int    // the GPU's index (nvidia-smi's numbering); -1 for the host
	Name  string // "NVIDIA GeForce RTX 4090", "host"
	Total int64  // bytes; 0 when not known
	// Used is what other processes use: nvidia-smi's memory.used, host
	// MemTotal - MemAvailable (page cache is available), or the devices
	// block's memory_used.
	Used   int64
	Source string // "nvidia-smi", "/proc/meminfo", "devices block at main.llorch.hcl:3"
}

// ID names the device in tables and JSON: "host", "gpu0".
func (d Device) ID() string {
	if d.Kind == KindHost {
		return KindHost
	}
	return KindGPU + strconv.Itoa(d.Index)
}

// Machine is the devices of one machine, host first, then GPUs by index.
type Machine struct {
	Name    string // "local" until machines exist
	Devices []Device
	// Discovered is true when the devices were measured on this machine
	// (nvidia-smi, /proc/meminfo) rather than given by a devices block:
	// then what running replicas use is part of Used.
	Discovered bool
	// Notes say what could not be learnt ("nvidia-smi is not on PATH: no
	// GPUs assumed").
	Notes []string
}

// GPU returns the GPU with index i.
func (m *Machine) GPU(i int) (Device, bool) {
	for _, d := range m.Devices {
		if d.Kind == KindGPU && d.Index == i {
			return d, true
		}
	}
	return Device{}, false
}

// GPUs lists the machine's GPUs.
func (m *Machine) GPUs() []Device {
	var out []Device
	for _, d := range m.Devices {
		if d.Kind == KindGPU {
			out = append(out, d)
		}
	}
	return out
}

// Discoverer learns the devices of this machine.
type Discoverer struct {
	Fs       afero.Fs                     // reads /proc/meminfo; nil: the OS file system
	LookPath func(string) (string, error) // finds nvidia-smi; nil: exec.LookPath
	Timeout  time.Duration                // for nvidia-smi; 0: 10s
}

// nvidiaSMIArgs asks for each GPU's index, name, total and used memory
// in MiB, one GPU a line.
var nvidiaSMIArgs = []string{"--query-gpu=index,name,memory.total,memory.used", "--format=csv,noheader,nounits"}

// Discover returns the machine's devices. A devices block (override, from
// the configuration) replaces nvidia-smi; its host block replaces
// /proc/meminfo. What cannot be learnt is a note, not an error: a plan
// never fails because nvidia-smi is missing.
func (d *Discoverer) Discover(ctx context.Context, override *config.Devices) *Machine {
	m := &Machine{Name: "local", Discovered: override == nil}
	host := Device{Kind: KindHost, Index: -1, Name: "host"}
	switch {
	case override != nil && override.Host != nil:
		host.Total, host.Used = override.Host.MemoryTotal, override.Host.MemoryUsed
		host.Source = "devices block at " + override.Host.Pos
	default:
		total, avail, err := d.meminfo()
		if err != nil {
			m.Notes = append(m.Notes, fmt.Sprintf("host memory unknown: %v", err))
		} else {
			host.Total, host.Used, host.Source = total, total-avail, "/proc/meminfo"
		}
	}
	m.Devices = append(m.Devices, host)
	if override != nil {
		for _, g := range override.GPUs {
			m.Devices = append(m.Devices, Device{Kind: KindGPU, Index: g.Index, Name: g.Name, Total: g.MemoryTotal,
				Used: g.MemoryUsed, Source: "devices block at " + g.Pos})
		}
	} else {
		gpus, note := d.nvidiaSMI(ctx)
		if note != "" {
			m.Notes = append(m.Notes, note)
		}
		m.Devices = append(m.Devices, gpus...)
	}
	sort.SliceStable(m.Devices[1:], func(i, j int) bool { return m.Devices[1+i].Index < m.Devices[1+j].Index })
	return m
}

// meminfo reads MemTotal and MemAvailable from /proc/meminfo, in bytes.
func (d *Discoverer) meminfo() (total, avail int64, err error) {
	fs := d.Fs
	if fs == nil {
		fs = afero.NewOsFs()
	}
	data, err := afero.ReadFile(fs, "/proc/meminfo")
	if err != nil {
		return 0, 0, fmt.Errorf("reading /proc/meminfo: %w", err)
	}
	return parseMeminfo(data)
}

func parseMeminfo(data []byte) (total, avail int64, err error) {
	found := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "MemTotal" && name != "MemAvailable") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, perr := strconv.ParseInt(f[0], 10, 64)
		if perr != nil || n < 0 {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n <<= 10
		}
		found[name] = n
	}
	total, ok1 := found["MemTotal"]
	avail, ok2 := found["MemAvailable"]
	if !ok1 || !ok2 || avail > total {
		return 0, 0, errors.New("/proc/meminfo has no usable MemTotal and MemAvailable")
	}
	return total, avail, nil
}

// nvidiaSMI lists the GPUs nvidia-smi reports; none, with a note, when it
// is missing or fails.
func (d *Discoverer) nvidiaSMI(ctx context.Context) ([]Device, string) {
	look := d.LookPath
	if look == nil {
		look = exec.LookPath
	}
	path, err := look("nvidia-smi")
	if err != nil {
		return nil, "" // no NVIDIA driver: a CPU machine, nothing to note
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, nvidiaSMIArgs...)
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Sprintf("nvidia-smi failed (%s): no GPUs assumed", firstLine(msg))
	}
	gpus, bad := parseNvidiaSMI(out.String())
	if bad > 0 {
		return gpus, fmt.Sprintf("nvidia-smi printed %d line(s) llorch could not read; those GPUs are left out", bad)
	}
	return gpus, ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// parseNvidiaSMI reads "0, NVIDIA GeForce RTX 4090, 24564, 1024" lines
// (index, name, total MiB, used MiB); bad counts lines it cannot read.
func parseNvidiaSMI(out string) (gpus []Device, bad int) {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 4 {
			bad++
			continue
		}
		idx, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
		total, err2 := strconv.ParseInt(strings.TrimSpace(f[len(f)-2]), 10, 64)
		used, err3 := strconv.ParseInt(strings.TrimSpace(f[len(f)-1]), 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || idx < 0 || total <= 0 || used < 0 {
			bad++
			continue
		}
		name := strings.TrimSpace(strings.Join(f[1:len(f)-2], ","))
		gpus = append(gpus, Device{Kind: KindGPU, Index: idx, Name: name, Total: total << 20, Used: used << 20, Source: "nvidia-smi"})
	}
	return gpus, bad
}
