package fit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
)

const gib = int64(1) << 30 // bytes

func TestParseMeminfo(t *testing.T) {
	total, avail, err := parseMeminfo([]byte("MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   20480000 kB\n"))
	if err != nil || total != 24576000<<10 || avail != 20480000<<10 {
		t.Errorf("parseMeminfo = %d, %d, %v", total, avail, err)
	}
	if _, _, err := parseMeminfo([]byte("MemTotal: 10 kB\n")); err == nil || !strings.Contains(err.Error(), "no usable MemTotal and MemAvailable") {
		t.Errorf("no MemAvailable: %v", err)
	}
}

func TestParseNvidiaSMI(t *testing.T) {
	gpus, bad := parseNvidiaSMI("0, NVIDIA GeForce RTX 4090, 24564, 1024\n1, Tesla, V100, 16384, 0\n[N/A]\n2, x, [N/A], 3\n")
	if bad != 2 || len(gpus) != 2 {
		t.Fatalf("gpus %+v, bad %d", gpus, bad)
	}
	if g := gpus[0]; g.Index != 0 || g.Name != "NVIDIA GeForce RTX 4090" || g.Total != 24564<<20 || g.Used != 1<<30 || g.Source != "nvidia-smi" {
		t.Errorf("gpu 0 = %+v", g)
	}
	if g := gpus[1]; g.Name != "Tesla, V100" || g.Total != 16<<30 {
		t.Errorf("a name with a comma: %+v", g)
	}
}

func TestDiscover(t *testing.T) {
	fs := afero.NewMemMapFs()
	_ = afero.WriteFile(fs, "/proc/meminfo", []byte("MemTotal: 1048576 kB\nMemAvailable: 786432 kB\n"), 0o644)
	dir := t.TempDir()
	smi := filepath.Join(dir, "nvidia-smi")
	if err := os.WriteFile(smi, []byte("#!/bin/sh\n[ \"$1\" = --query-gpu=index,name,memory.total,memory.used ] || exit 9\necho '1, B, 8192, 0'\necho '0, A, 4096, 1024'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	look := func(string) (string, error) { return smi, nil }
	m := (&Discoverer{Fs: fs, LookPath: look}).Discover(context.Background(), nil)
	if !m.Discovered || len(m.Devices) != 3 || len(m.Notes) != 0 {
		t.Fatalf("machine = %+v", m)
	}
	if h := m.Devices[0]; h.ID() != "host" || h.Total != 1*gib || h.Used != gib/4 || h.Source != "/proc/meminfo" {
		t.Errorf("host = %+v", h)
	}
	if m.Devices[1].ID() != "gpu0" || m.Devices[2].ID() != "gpu1" || m.Devices[1].Used != 1<<30 {
		t.Errorf("GPUs, by index: %+v", m.Devices[1:])
	}

	t.Run("nvidia-smi fails", func(t *testing.T) {
		bad := filepath.Join(dir, "broken")
		_ = os.WriteFile(bad, []byte("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2\nexit 9\n"), 0o755)
		m := (&Discoverer{Fs: fs, LookPath: func(string) (string, error) { return bad, nil }}).Discover(context.Background(), nil)
		if len(m.Devices) != 1 || len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "nvidia-smi failed (NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.): no GPUs assumed") {
			t.Errorf("machine = %+v", m)
		}
	})
	t.Run("no /proc/meminfo", func(t *testing.T) {
		m := (&Discoverer{Fs: afero.NewMemMapFs(), LookPath: func(string) (string, error) { return "", os.ErrNotExist }}).Discover(context.Background(), nil)
		if len(m.Devices) != 1 || m.Devices[0].Total != 0 || len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "host memory unknown: reading /proc/meminfo") {
			t.Errorf("machine = %+v", m)
		}
	})
	t.Run("a devices block replaces nvidia-smi and meminfo", func(t *testing.T) {
		var r hcl.Range
		m := (&Discoverer{Fs: fs, LookPath: look}).Discover(context.Background(), &config.Devices{
			GPUs: []config.GPU{{Index: 3, Name: "RTX", MemoryTotal: 24 * gib, MemoryUsed: gib, DeclRange: r, Pos: "main.llorch.hcl:3"}},
			Host: &config.HostMemory{MemoryTotal: 64 * gib, MemoryUsed: 8 * gib, DeclRange: r, Pos: "main.llorch.hcl:3"},
		})
		if m.Discovered || len(m.Devices) != 2 || m.Devices[0].Total != 64*gib || m.Devices[1].ID() != "gpu3" ||
			m.Devices[1].Source != "devices block at main.llorch.hcl:3" {
			t.Errorf("machine = %+v", m)
		}
	})
}
