package discovery

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/afero"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/providers"
)

// lockFileHeader opens every lock file llorch writes.
const lockFileHeader = `# This file is maintained by "llorch init" and "llorch apply". Manual edits may be lost.` + "\n"

// LockFile is .llorch.lock.hcl: the providers `llorch init` accepted, with
// the checksum each third-party plugin must still have.
//
// It also pins, as engine "PROVIDER" {} and model "REF" {} blocks, the
// engine binary each provider runs and the bytes of each model (written by
// apply, see providers.Pins).
type LockFile struct {
	// Providers is sorted by name.
	Providers []LockedProvider
	Pins      providers.Pins
}

// LockedProvider is one provider "NAME" {} block of the lock file.
type LockedProvider struct {
	Name    string
	Version string
	// Path is where the plugin was found, relative to the lock file's
	// directory when it is inside it. Informational: the checksum decides.
	Path string
	// SHA256 is the plugin executable's digest in hex; empty for built-ins,
	// which are the llorch executable itself.
	SHA256  string
	Builtin bool
}

// Lookup returns the entry for name.
func (lf *LockFile) Lookup(name string) (LockedProvider, bool) {
	if lf == nil {
		return LockedProvider{}, false
	}
	for _, p := range lf.Providers {
		if p.Name == name {
			return p, true
		}
	}
	return LockedProvider{}, false
}

type lockFileSyntax struct {
	Providers []lockedProviderSyntax `hcl:"provider,block"`
	Engines   []lockedEngineSyntax   `hcl:"engine,block"`
	Models    []lockedModelSyntax    `hcl:"model,block"`
}

type lockedEngineSyntax struct {
	Provider string    `hcl:"provider,label"`
	Version  string    `hcl:"version,optional"`
	SHA256   string    `hcl:"sha256"`
	DefRange hcl.Range `hcl:",def_range"`
}

type lockedModelSyntax struct {
	Ref      string    `hcl:"ref,label"`
	Size     int64     `hcl:"size,optional"`
	Revision string    `hcl:"revision,optional"`
	SHA256   string    `hcl:"sha256"`
	DefRange hcl.Range `hcl:",def_range"`
}

type lockedProviderSyntax struct {
	Name     string    `hcl:"name,label"`
	Version  string    `hcl:"version,optional"`
	Path     string    `hcl:"path,optional"`
	SHA256   string    `hcl:"sha256,optional"`
	Builtin  bool      `hcl:"builtin,optional"`
	DefRange hcl.Range `hcl:",def_range"`
}

// ParseLockFile parses the lock file's source. Problems come back as
// hcl.Diagnostics (which implement error), each pointing into src.
func ParseLockFile(src []byte, filename string) (*LockFile, error) {
	f, diags := hclparse.NewParser().ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	var raw lockFileSyntax
	diags = gohcl.DecodeBody(f.Body, nil, &raw)
	if diags.HasErrors() {
		return nil, diags
	}

	lf := &LockFile{}
	seen := map[string]hcl.Range{}
	for _, p := range raw.Providers {
		if prev, dup := seen[p.Name]; dup {
			diags = diags.Append(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate provider lock",
				Detail:   fmt.Sprintf("Provider %q is already locked at %s. Remove one of the blocks, or run `llorch init` to rewrite the file.", p.Name, prev),
				Subject:  p.DefRange.Ptr(),
			})
			continue
		}
		seen[p.Name] = p.DefRange
		switch {
		case p.Builtin && p.SHA256 != "":
			diags = diags.Append(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unexpected checksum",
				Detail:   fmt.Sprintf("Provider %q is built in, so it has no checksum of its own; remove sha256 or builtin.", p.Name),
				Subject:  p.DefRange.Ptr(),
			})
			continue
		case !p.Builtin && !validSHA256(p.SHA256):
			diags = diags.Append(&hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid checksum",
				Detail: fmt.Sprintf("Provider %q needs sha256 set to the 64 hex digits of its plugin's digest, not %q. Run `llorch init` to record it.",
					p.Name, p.SHA256),
				Subject: p.DefRange.Ptr(),
			})
			continue
		}
		lf.Providers = append(lf.Providers, lockedProvider(p))
	}
	diags = append(diags, parsePins(raw, &lf.Pins)...)
	if diags.HasErrors() {
		return nil, diags
	}
	sort.Slice(lf.Providers, func(i, j int) bool { return lf.Providers[i].Name < lf.Providers[j].Name })
	return lf, nil
}

// parsePins reads the engine and model blocks into pins.
func parsePins(raw lockFileSyntax, pins *providers.Pins) hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(kind, name, sum string, rng hcl.Range) {
		diags = diags.Append(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid checksum",
			Detail: fmt.Sprintf("The %s %q needs sha256 set to the 64 hex digits of its digest, not %q. Remove the block and run llorch apply to pin it again.",
				kind, name, sum),
			Subject: rng.Ptr(),
		})
	}
	dup := func(kind, name string, prev, rng hcl.Range) {
		diags = diags.Append(&hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Duplicate " + kind + " lock",
			Detail:   fmt.Sprintf("The %s %q is already pinned at %s. Remove one of the blocks.", kind, name, prev),
			Subject:  rng.Ptr(),
		})
	}
	seen := map[string]hcl.Range{}
	for _, e := range raw.Engines {
		switch prev, ok := seen["engine "+e.Provider]; {
		case ok:
			dup("engine", e.Provider, prev, e.DefRange)
		case !validSHA256(e.SHA256):
			bad("engine", e.Provider, e.SHA256, e.DefRange)
		default:
			seen["engine "+e.Provider] = e.DefRange
			if pins.Engines == nil {
				pins.Engines = map[string]providers.EnginePin{}
			}
			pins.Engines[e.Provider] = providers.EnginePin{SHA256: e.SHA256, Version: e.Version}
		}
	}
	for _, m := range raw.Models {
		switch prev, ok := seen["model "+m.Ref]; {
		case ok:
			dup("model", m.Ref, prev, m.DefRange)
		case !validSHA256(m.SHA256):
			bad("model", m.Ref, m.SHA256, m.DefRange)
		default:
			seen["model "+m.Ref] = m.DefRange
			if pins.Models == nil {
				pins.Models = map[string]providers.ModelPin{}
			}
			pins.Models[m.Ref] = providers.ModelPin{SHA256: m.SHA256, Size: m.Size, Revision: m.Revision}
		}
	}
	return diags
}

func lockedProvider(p lockedProviderSyntax) LockedProvider {
	return LockedProvider{Name: p.Name, Version: p.Version, Path: p.Path, SHA256: p.SHA256, Builtin: p.Builtin}
}

func validSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

// LoadLockFile reads and parses the lock file at path. A missing file is an
// empty lock file: nothing has been initialized yet.
func LoadLockFile(fsys afero.Fs, path string) (*LockFile, error) {
	src, err := afero.ReadFile(fsys, path)
	if errors.Is(err, fs.ErrNotExist) {
		return &LockFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lock file: %w", err)
	}
	return ParseLockFile(src, path)
}

// Bytes renders the lock file: the header, then one block per provider in
// name order, formatted by hclwrite. Equal lock files give equal bytes.
func (lf *LockFile) Bytes() []byte {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	body.AppendUnstructuredTokens(hclwrite.Tokens{{Type: hclsyntax.TokenComment, Bytes: []byte(lockFileHeader)}})
	ps := append([]LockedProvider(nil), lf.Providers...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	for i, p := range ps {
		if i > 0 {
			body.AppendNewline()
		}
		b := body.AppendNewBlock("provider", []string{p.Name}).Body()
		b.SetAttributeValue("version", cty.StringVal(p.Version))
		if p.Builtin {
			b.SetAttributeValue("builtin", cty.True)
			continue
		}
		b.SetAttributeValue("path", cty.StringVal(p.Path))
		b.SetAttributeValue("sha256", cty.StringVal(p.SHA256))
	}
	for _, name := range providers.SortedKeys(lf.Pins.Engines) {
		e := lf.Pins.Engines[name]
		body.AppendNewline()
		b := body.AppendNewBlock("engine", []string{name}).Body()
		if e.Version != "" {
			b.SetAttributeValue("version", cty.StringVal(e.Version))
		}
		b.SetAttributeValue("sha256", cty.StringVal(e.SHA256))
	}
	for _, ref := range providers.SortedKeys(lf.Pins.Models) {
		m := lf.Pins.Models[ref]
		body.AppendNewline()
		b := body.AppendNewBlock("model", []string{ref}).Body()
		if m.Size > 0 {
			b.SetAttributeValue("size", cty.NumberIntVal(m.Size))
		}
		if m.Revision != "" {
			b.SetAttributeValue("revision", cty.StringVal(m.Revision))
		}
		b.SetAttributeValue("sha256", cty.StringVal(m.SHA256))
	}
	return hclwrite.Format(f.Bytes())
}

// Save writes the lock file atomically, mode 0644: it belongs in version
// control next to the configuration.
func (lf *LockFile) Save(fsys afero.Fs, path string) error {
	if err := atomicfile.Write(fsys, path, lf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing lock file: %w", err)
	}
	return nil
}

// recordedPath is how the lock file records a plugin path: relative to the
// lock file's directory when the plugin is inside it, so that the file
// reads the same in every checkout.
func recordedPath(lockPath, pluginPath string) string {
	dir, err := filepath.Abs(filepath.Dir(lockPath))
	if err != nil {
		return pluginPath
	}
	rel, err := filepath.Rel(dir, pluginPath)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return pluginPath
	}
	return filepath.ToSlash(rel)
}

// osFs is the real filesystem, for the lock file.
var osFs afero.Fs = afero.NewOsFs()

// UpdatePins records found in the lock file at path as mode allows (see
// providers.Pins.Merge), keeping its provider entries, and returns what it
// pinned. The file is written only when that is something.
func UpdatePins(fsys afero.Fs, path string, found providers.Pins, mode providers.LockMode) ([]string, error) {
	lf, err := LoadLockFile(fsys, path)
	if err != nil {
		return nil, err
	}
	pinned := lf.Pins.Merge(found, mode)
	if len(pinned) == 0 {
		return nil, nil
	}
	return pinned, lf.Save(fsys, path)
}

// Pins returns the engine and model pins of the lock file in force (none
// when no lock file is checked).
func (r *Resolver) Pins() *providers.Pins {
	lf := r.lockFile()
	if lf == nil {
		return &providers.Pins{}
	}
	return &lf.Pins
}
