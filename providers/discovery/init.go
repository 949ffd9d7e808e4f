package discovery

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/llorch/llorch/providers"
)

// Info describes one provider, for `llorch providers [-json]`.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Path is the plugin executable; for a built-in, the llorch executable.
	Path    string `json:"path"`
	Builtin bool   `json:"builtin"`
	// SHA256 is the plugin executable's digest; empty for built-ins.
	SHA256 string            `json:"sha256,omitempty"`
	Schema *providers.Schema `json:"schema"`
}

// Describe starts every provider Names lists (through the lock file check,
// like Provider) and reports its version and schema, sorted by name. A
// provider that fails is left out and its error joins the returned one;
// the others are still described.
func (r *Resolver) Describe(ctx context.Context) ([]Info, error) {
	var infos []Info
	var errs *multierror.Error
	for _, name := range r.Names() {
		p, err := r.Provider(ctx, name)
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		schema, diags := p.GetSchema(ctx)
		if diags.HasErrors() {
			errs = multierror.Append(errs, fmt.Errorf("provider %q: reading its schema: %w", name, diags.Err()))
			continue
		}
		info := Info{Name: name, Schema: schema}
		if schema != nil {
			info.Version = schema.Version
		}
		if pp, ok := p.(*pluginProvider); ok {
			info.Path, info.Builtin, info.SHA256 = pp.spec.path, pp.spec.builtin, pp.spec.sha256
			if !info.Builtin && info.SHA256 == "" {
				if info.SHA256, err = fileSHA256(info.Path); err != nil {
					errs = multierror.Append(errs, fmt.Errorf("provider %q: %w", name, err))
					continue
				}
			}
		}
		infos = append(infos, info)
	}
	return infos, joined(errs)
}

// Init is `llorch init [-upgrade]`: it starts every provider Names lists,
// records its version (and, for a third-party plugin, its path and sha256)
// in the lock file at lockPath, and returns what it wrote. Without upgrade
// it refuses to change the checksum an existing entry records, with the same
// error Provider gives; with upgrade it records the plugin as it is now.
// Providers no longer found are dropped from the file.
//
// Nothing is written unless every provider succeeds. When lockPath is the
// resolver's own lock file, the resolver uses the new one from then on.
// The engine and model pins are kept as they are. With readonly, nothing
// is written: a lock file that would change is an error saying how.
func Init(ctx context.Context, r *Resolver, lockPath string, upgrade, readonly bool) (*LockFile, error) {
	old, err := LoadLockFile(osFs, lockPath)
	if err != nil {
		return nil, err
	}
	lf := &LockFile{Pins: old.Pins}
	var errs *multierror.Error
	for _, name := range r.Names() {
		lp, err := r.lockEntry(ctx, name, lockPath, old, upgrade)
		if err != nil {
			errs = multierror.Append(errs, err)
			continue
		}
		lf.Providers = append(lf.Providers, lp)
	}
	if err := joined(errs); err != nil {
		return nil, err
	}
	if readonly {
		if d := providersDiff(old, lf); d != "" {
			return nil, fmt.Errorf("the lock file %s would change (%s), and -lockfile=readonly forbids it: run llorch init without it, review the change and commit the file", lockPath, d)
		}
		return lf, nil
	}
	if err := lf.Save(osFs, lockPath); err != nil {
		return nil, err
	}
	if r.opts.LockFile != "" && samePath(r.opts.LockFile, lockPath) {
		r.setLockFile(lf)
	}
	return lf, nil
}

// lockEntry starts one provider outside the resolver's cache (a
// third-party plugin is checked against the checksum it has now, not
// against the lock file) and returns its lock file entry.
func (r *Resolver) lockEntry(ctx context.Context, name, lockPath string, old *LockFile, upgrade bool) (LockedProvider, error) {
	spec := launchSpec{name: name}
	if args, ok := r.opts.Builtins[name]; ok {
		spec.path, spec.args, spec.builtin = r.opts.SelfExe, args, true
	} else {
		path, err := r.find(name)
		if err != nil {
			return LockedProvider{}, err
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return LockedProvider{}, fmt.Errorf("provider %q: %w", name, err)
		}
		lockName := filepath.Base(lockPath)
		if prev, ok := old.Lookup(name); ok && !upgrade {
			if _, err := checkLocked(old, lockName, name, path); err != nil {
				return LockedProvider{}, err
			}
			if prev.SHA256 != sum {
				return LockedProvider{}, checksumMismatch(name, path, sum, lockName, prev.SHA256)
			}
		}
		spec.path, spec.sha256, spec.lockName = path, sum, lockName
	}

	p, err := r.launch(ctx, spec, func() {})
	if err != nil {
		return LockedProvider{}, err
	}
	defer p.kill()
	schema, diags := p.GetSchema(ctx)
	if diags.HasErrors() {
		return LockedProvider{}, fmt.Errorf("provider %q: reading its schema: %w", name, diags.Err())
	}
	lp := LockedProvider{Name: name, Builtin: spec.builtin}
	if schema != nil {
		lp.Version = schema.Version
	}
	if !spec.builtin {
		lp.Path, lp.SHA256 = recordedPath(lockPath, spec.path), spec.sha256
	}
	return lp, nil
}

func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// joined returns errs as one error whose text is each message on its own
// line (a single error's text is unchanged), or nil.
func joined(errs *multierror.Error) error {
	if errs == nil {
		return nil
	}
	errs.ErrorFormat = func(es []error) string {
		msgs := make([]string, len(es))
		for i, e := range es {
			msgs[i] = e.Error()
		}
		return strings.Join(msgs, "\n")
	}
	return errs.ErrorOrNil()
}

// providersDiff says how the provider entries of b differ from a's, ""
// when they do not.
func providersDiff(a, b *LockFile) string {
	was := map[string]LockedProvider{}
	for _, p := range a.Providers {
		was[p.Name] = p
	}
	var changes []string
	for _, p := range b.Providers {
		old, ok := was[p.Name]
		switch {
		case !ok:
			changes = append(changes, fmt.Sprintf("provider %q would be added", p.Name))
		case old != p:
			changes = append(changes, fmt.Sprintf("provider %q would be recorded as version %s, sha256 %q instead of version %s, sha256 %q", p.Name, p.Version, p.SHA256, old.Version, old.SHA256))
		}
		delete(was, p.Name)
	}
	for _, name := range providers.SortedKeys(was) {
		changes = append(changes, fmt.Sprintf("provider %q would be removed", name))
	}
	return strings.Join(changes, "; ")
}
