package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/textdiff"
	"github.com/llorch/llorch/internal/views"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/discovery"
)

func cmdValidate(m *meta, args []string) int {
	fs := flagSet("validate")
	var v viewFlags
	v.add(fs, true)
	// Variables without a default need no value (they are unknown), as in
	// Terraform; values given are checked and used.
	var vars varFlags
	vars.add(fs)
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(v)
	diags := m.validate(vars.args)
	if v.json {
		errs, warns := 0, 0
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				errs++
			} else {
				warns++
			}
		}
		// A struct keeps Terraform's key order, which people read.
		code := m.printJSON(struct {
			FormatVersion string                 `json:"format_version"`
			Valid         bool                   `json:"valid"`
			ErrorCount    int                    `json:"error_count"`
			WarningCount  int                    `json:"warning_count"`
			Diagnostics   []views.JSONDiagnostic `json:"diagnostics"`
		}{"1.0", errs == 0, errs, warns, views.DiagnosticsJSONIn(diags, m.files, m.dir)})
		if errs > 0 {
			return 1
		}
		return code
	}
	if m.diagnostics(diags) {
		return 1
	}
	fmt.Fprintln(m.stdout, "Success! The configuration is valid.")
	return 0
}

// validate loads the configuration and checks it against the providers'
// schemas, without touching state or the engines.
func (m *meta) validate(vars []config.VarArg) hcl.Diagnostics {
	r, err := m.providerResolver()
	if err != nil {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot find providers", Detail: err.Error()}}
	}
	cfg, diags := config.Load(m.fs, m.dir, config.LoadOptions{Engines: r.Names(), Vars: vars, Validate: true})
	if cfg != nil {
		m.files = cfg.Files
	}
	if diags.HasErrors() {
		return diags
	}
	if len(cfg.Files) == 0 {
		return append(diags, noConfigFiles(m.dir))
	}
	pl, err := m.planner(nil)
	if err != nil {
		return append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot find providers", Detail: err.Error()})
	}
	return append(diags, pl.Validate(m.ctx, cfg)...)
}

func cmdFmt(m *meta, args []string) int {
	fs := flagSet("fmt")
	check := fs.Bool("check", false, "exit 3 if any file is not formatted; change nothing")
	diff := fs.Bool("diff", false, "print the changes as a unified diff")
	recursive := fs.Bool("recursive", false, "also format files in subdirectories")
	list := fs.Bool("list", true, "list the files whose formatting differs")
	write := fs.Bool("write", true, "write the result to the files")
	var v viewFlags
	v.add(fs, false)
	if !m.parseFlags(fs, args) {
		return 1
	}
	if *check {
		*write = false
	}
	if m.files == nil {
		m.files = map[string]*hcl.File{}
	}
	targets := fs.Args()
	if len(targets) == 0 {
		targets = []string{"."}
	}
	var files []string
	for _, t := range targets {
		path := t
		if !filepath.IsAbs(path) {
			path = filepath.Join(m.dir, path)
		}
		fi, err := m.fs.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			m.errorf("Invalid fmt target", "There is no file or directory %s in %s. Give llorch fmt files or directories that exist.", t, m.dir)
			return 1
		}
		if err != nil {
			m.fail("Invalid fmt target", err)
			return 1
		}
		if !fi.IsDir() {
			files = append(files, path)
			continue
		}
		found, err := config.FormatTargets(m.fs, path, *recursive)
		if err != nil {
			m.fail("Cannot list configuration files", err)
			return 1
		}
		files = append(files, found...)
	}
	sort.Strings(files)
	var diags hcl.Diagnostics
	changed := 0
	for _, path := range files {
		src, err := afero.ReadFile(m.fs, path)
		if err != nil {
			m.fail("Cannot read file", err)
			return 1
		}
		out, fdiags := config.FormatSource(path, src)
		diags = append(diags, fdiags...)
		if fdiags.HasErrors() {
			// The diagnostics show the offending source, in its block.
			f, _ := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
			if f == nil || f.Bytes == nil {
				f = &hcl.File{Bytes: src}
			}
			m.files[path] = f
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		changed++
		name := relTo(m.dir, path)
		if *list {
			fmt.Fprintln(m.stdout, name)
		}
		if *diff {
			fmt.Fprint(m.stdout, textdiff.Unified("old/"+name, "new/"+name, src, out))
		}
		if *write {
			fi, _ := m.fs.Stat(path)
			if err := afero.WriteFile(m.fs, path, out, fi.Mode().Perm()); err != nil {
				m.fail("Cannot write file", err)
				return 1
			}
		}
	}
	if m.diagnostics(diags) {
		return 2
	}
	if *check && changed > 0 {
		return 3
	}
	return 0
}

func relTo(base, path string) string {
	if rel, err := filepath.Rel(base, path); err == nil {
		return rel
	}
	return path
}

func cmdInit(m *meta, args []string) int {
	fs := flagSet("init")
	upgrade := fs.Bool("upgrade", false, "accept plugins whose checksum changed and record the new ones")
	var lockfile lockModeFlag
	fs.Var(&lockfile, "lockfile", "readonly: fail instead of changing the lock file (CI)")
	var v viewFlags
	v.add(fs, false)
	var bf backendFlags
	bf.add(fs)
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(v)
	if !m.initBackend(bf) {
		return 1
	}
	r, err := m.providerResolver()
	if err != nil {
		m.fail("Cannot find providers", err)
		return 1
	}
	fmt.Fprintln(m.stdout, "Initializing provider plugins...")
	if lockfile.mode == providers.LockUpgrade {
		m.errorf("Invalid -lockfile option", "llorch init takes -lockfile=readonly only; to accept changed plugins use -upgrade.")
		return 1
	}
	readonly := lockfile.mode == providers.LockReadonly
	lock, err := discovery.Init(m.ctx, r, filepath.Join(m.dir, lockFileName), *upgrade, readonly)
	if err != nil {
		m.fail("Failed to initialize providers", err)
		return 1
	}
	for _, p := range lock.Providers {
		where := "built in"
		if !p.Builtin {
			where = p.Path
		}
		fmt.Fprintf(m.stdout, "- %s v%s (%s)\n", p.Name, p.Version, where)
	}
	if readonly {
		fmt.Fprintf(m.stdout, "\nThe lock file %s records these providers: nothing changed.\n\nllorch has been successfully initialized!\n", lockFileName)
		return 0
	}
	fmt.Fprintf(m.stdout, "\nllorch has created a lock file %s to record the provider\nplugins and their checksums. Commit it to version control.\n\nllorch has been successfully initialized!\n", lockFileName)
	return 0
}

func cmdProviders(m *meta, args []string) int {
	fs := flagSet("providers")
	var v viewFlags
	v.add(fs, true)
	if !m.parseFlags(fs, args) {
		return 1
	}
	r, err := m.providerResolver()
	if err != nil {
		m.fail("Cannot find providers", err)
		return 1
	}
	infos, err := r.Describe(m.ctx)
	if err != nil {
		m.fail("Cannot describe providers", err)
		return 1
	}
	if v.json {
		return m.printJSON(map[string]any{"format_version": "1.0", "providers": infos})
	}
	for _, in := range infos {
		where := "built in"
		if !in.Builtin {
			where = in.Path
		}
		fmt.Fprintf(m.stdout, "%s v%s (%s)\n", in.Name, in.Version, where)
		views.WriteSchema(m.stdout, in.Schema)
	}
	return 0
}
