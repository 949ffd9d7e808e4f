package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestDevicesBlock(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `
variable "vram" {
  default = "24GiB"
}
devices {
  gpu {
    index        = 0
    name         = "RTX 4090"
    memory_total = var.vram
    memory_used  = "1GiB"
  }
  gpu {
    index        = 1
    memory_total = 25769803776
  }
  host {
    memory_total = "64 GiB"
    memory_used  = "8GB"
  }
}
pool "chat" {
  engine  = "llamacpp"
  devices = [1, 0]
  fit     = "warn"
  ` + okModel + `
}
pool "embed" {
  engine = "llamacpp"
  ` + okModel + `
}`}, LoadOptions{})
	d := cfg.Devices
	if d == nil || len(d.GPUs) != 2 || d.Host == nil {
		t.Fatalf("devices = %+v", d)
	}
	g0, g1 := d.GPUs[0], d.GPUs[1]
	if g0.Index != 0 || g0.Name != "RTX 4090" || g0.MemoryTotal != 24<<30 || g0.MemoryUsed != 1<<30 || g0.DeclRange.Start.Line != 6 || g0.Pos != "main.llorch.hcl:6" {
		t.Errorf("gpu 0 = %+v", g0)
	}
	if g1.Index != 1 || g1.MemoryTotal != 24<<30 || g1.MemoryUsed != 0 {
		t.Errorf("gpu 1 = %+v", g1)
	}
	if d.Host.MemoryTotal != 64<<30 || d.Host.MemoryUsed != 8e9 {
		t.Errorf("host = %+v", d.Host)
	}
	if got := []string{cfg.Pools[0].Fit, cfg.Pools[1].Fit}; !reflect.DeepEqual(got, []string{FitWarn, FitError}) {
		t.Errorf("fit modes of chat and embed = %q, want warn and the default, error", got)
	}
}

func TestDevicesBlockBadInput(t *testing.T) {
	pool := func(extra string) string {
		return "pool \"chat\" {\n  engine = \"llamacpp\"\n  " + okModel + "\n  " + extra + "\n}\n"
	}
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"an unknown unit", "devices {\n  gpu {\n    index = 0\n    memory_total = \"24GiG\"\n  }\n}\n", []string{
			`main.llorch.hcl:4:20: Invalid memory size: memory_total: "24GiG" has an unknown unit "GiG". Did you mean "GiB"? Use one of B, KiB, MiB, GiB, TiB, KB, MB, GB, TB.`}},
		{"a negative size", "devices {\n  host {\n    memory_total = \"-8GiB\"\n  }\n}\n", []string{
			`main.llorch.hcl:3:20: Invalid memory size: memory_total: "-8GiB" is negative; a memory size is 0 or more.`}},
		{"a negative number of bytes", "devices {\n  host {\n    memory_total = 64\n    memory_used = -1\n  }\n}\n", []string{
			`main.llorch.hcl:4:19: Invalid memory size: memory_used: "-1" is negative; a memory size is 0 or more.`}},
		{"not a number", "devices {\n  host {\n    memory_total = \"lots\"\n  }\n}\n", []string{
			`main.llorch.hcl:3:20: Invalid memory size: memory_total: "lots" has an unknown unit "lots". Use one of B, KiB, MiB, GiB, TiB, KB, MB, GB, TB.`}},
		{"used above total", "devices {\n  gpu {\n    index = 0\n    memory_total = \"8GiB\"\n    memory_used = \"9GiB\"\n  }\n}\n", []string{
			`main.llorch.hcl:5:19: Invalid memory size: memory_used (9.0 GiB) is more than memory_total (8.0 GiB).`}},
		{"a zero total", "devices {\n  host {\n    memory_total = 0\n  }\n}\n", []string{
			`main.llorch.hcl:3:20: Invalid memory size: memory_total is 0: a host has some memory. Give its size, like "24GiB".`}},
		{"a missing total", "devices {\n  gpu {\n    index = 0\n  }\n}\n", []string{
			`main.llorch.hcl:2:7: Missing required argument: The argument "memory_total" is required, but no definition was found.`}},
		{"a duplicate GPU index", "devices {\n  gpu {\n    index = 0\n    memory_total = \"8GiB\"\n  }\n  gpu {\n    index = 0\n    memory_total = \"8GiB\"\n  }\n}\n", []string{
			`main.llorch.hcl:6:3: Duplicate GPU index: GPU 0 was already described at main.llorch.hcl:2. Each gpu block describes one GPU; give each its own index, as nvidia-smi numbers them.`}},
		{"a negative GPU index", "devices {\n  gpu {\n    index = -1\n    memory_total = \"8GiB\"\n  }\n}\n", []string{
			`main.llorch.hcl:3:13: Invalid GPU index: index is -1, but GPU indices are whole numbers, 0 or more, as nvidia-smi numbers the GPUs.`}},
		{"two devices blocks", "devices {\n}\ndevices {\n}\n", []string{
			`main.llorch.hcl:3:1: Duplicate devices block: Only one devices block is allowed. Another was defined at main.llorch.hcl:1.`}},
		{"two host blocks", "devices {\n  host {\n    memory_total = 1\n  }\n  host {\n    memory_total = 1\n  }\n}\n", []string{
			`main.llorch.hcl:5:3: Duplicate host block: Only one host block is allowed in devices. Another was defined at main.llorch.hcl:2.`}},
		{"a pool's GPU the devices block does not describe",
			"devices {\n  gpu {\n    index = 0\n    memory_total = \"8GiB\"\n  }\n}\n" + pool("devices = [0, 3]"), []string{
				`main.llorch.hcl:10:13: Unknown device: pool.chat: devices[1] is GPU 3, but the devices block at main.llorch.hcl:1 describes GPUs 0. Use one of those, or add a gpu block for it.`}},
		{"a GPU pool on a machine without GPUs", "devices {\n}\n" + pool("devices = [0]"), []string{
			`main.llorch.hcl:6:13: Unknown device: pool.chat: devices[0] is GPU 0, but the devices block at main.llorch.hcl:1 describes no GPU. Use one of those, or add a gpu block for it.`}},
		{"a misspelt fit mode", pool(`fit = "eror"`), []string{
			`main.llorch.hcl:4:9: Invalid fit mode: "eror" is not a fit mode. Did you mean "error"? Use "error" or "warn".`}},
		{"an unknown fit mode", pool(`fit = "warning"`), []string{
			`main.llorch.hcl:4:9: Invalid fit mode: "warning" is not a fit mode. Use "error" or "warn".`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := load(t, map[string]string{"main.llorch.hcl": tc.src}, LoadOptions{})
			checkDiags(t, diags, tc.want)
		})
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30, "24GiB": 24 << 30, "1.5 GiB": 3 << 29, "512MiB": 512 << 20, "16GB": 16e9,
		"0": 0, "7 B": 7, "2TiB": 2 << 40, "4KiB": 4096, "1KB": 1000,
	} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":           "a size is required",
		"1.2.3GiB":   `"1.2.3GiB" is not a size`,
		"24 gib":     `unknown unit "gib". Did you mean "GiB"?`,
		"9999999TiB": `"9999999TiB" is too large`,
	} {
		if _, err := ParseBytes(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseBytes(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 24 << 30: "24.0 GiB", -(3 << 20): "-3.0 MiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
