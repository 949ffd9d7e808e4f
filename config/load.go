package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// File name suffixes Load and FormatTargets look for.
const (
	ConfigSuffix   = ".llorch.hcl"
	VarsSuffix     = ".llorchvars.hcl"
	AutoVarsSuffix = ".auto.llorchvars.hcl"
)

// EnvVarPrefix prefixes environment variables that set input variables:
// LLORCH_VAR_models=/srv/models sets var.models.
const EnvVarPrefix = "LLORCH_VAR_"

// DefaultEngines are the engines Load knows when LoadOptions.Engines is nil:
// the ones built into llorch.
var DefaultEngines = []string{"llamacpp"}

// LoadOptions are the inputs to Load besides the files.
type LoadOptions struct {
	// Engines are the known provider names (from the provider resolver,
	// e.g. ["llamacpp", "vllm"]). nil means DefaultEngines.
	Engines []string
	// Vars are -var and -var-file, in command-line order (later wins).
	Vars []VarArg
	// Environ is the environment for LLORCH_VAR_<name> and the env()
	// function, as "KEY=value" strings; nil means os.Environ().
	Environ []string
	// OnSettings, when set, is called with the llorch {} block as soon as
	// it is decoded, before variables and pools are evaluated, so that a
	// caller can start what needs only the state's location (reading the
	// state) while the rest loads. It is not called when the files do not
	// parse or the block has errors. It must return quickly.
	OnSettings func(Settings)
	// Validate loads for `llorch validate`: a required variable without a
	// value is unknown rather than an error, as in Terraform, so that the
	// configuration can be checked before its values are at hand.
	Validate bool
}

// VarArg is one -var name=value or -var-file=File argument. A relative File
// is read relative to the configuration directory, as -chdir does in
// Terraform.
type VarArg struct {
	Name, Value string
	File        string
}

// ParseVarFlag parses the argument of -var ("name=value") into a VarArg.
func ParseVarFlag(s string) (VarArg, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return VarArg{}, fmt.Errorf("invalid -var %q: expected name=value, like -var 'models=/srv/models'", s)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return VarArg{}, fmt.Errorf("invalid -var %q: the variable name before \"=\" is empty", s)
	}
	if !validIdentifier(name) {
		return VarArg{}, fmt.Errorf("invalid -var %q: %q is not a valid variable name", s, name)
	}
	return VarArg{Name: name, Value: value}, nil
}

// Load reads every *.llorch.hcl file in dir (not recursively; "" means
// "."), sorted by name, through fs (nil means the OS file system), and
// evaluates them.
//
// It always returns a non-nil *Config with Files filled in, even when diags
// has errors, so callers can render source snippets. A directory without
// configuration files is not an error here: callers that need pools say so.
// After syntax errors Load stops, because decoding a half-parsed file only
// adds confusing follow-up errors.
func Load(fs afero.Fs, dir string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	l := newLoader(fs, dir, opts)
	l.load()
	return l.cfg, l.diags
}

// LoadSettings reads only the llorch {} block, for the commands that need
// to know where the state lives but not the pools (state, status, logs,
// drain, show, force-unlock): they work without -var values. Like
// Terraform's backend block, the llorch block cannot use variables.
func LoadSettings(fs afero.Fs, dir string) (*Config, hcl.Diagnostics) {
	l := newLoader(fs, dir, LoadOptions{})
	l.funcs = l.functions()
	if byType, ok := l.parseAll(); ok {
		l.decodeSettings(byType["llorch"])
	}
	sortDiags(l.diags)
	return l.cfg, l.diags
}

func newLoader(fs afero.Fs, dir string, opts LoadOptions) *loader {
	if fs == nil {
		fs = afero.NewOsFs()
	}
	if dir == "" {
		dir = "."
	}
	if opts.Engines == nil {
		opts.Engines = DefaultEngines
	}
	return &loader{
		fs:   fs,
		dir:  dir,
		opts: opts,
		cfg: &Config{
			Dir:       dir,
			Settings:  defaultSettings(),
			Variables: map[string]*Variable{},
			Providers: map[string]*ProviderBlock{},
			Files:     map[string]*hcl.File{},
		},
		environ:   environMap(opts.Environ),
		sources:   map[string][]byte{},
		fileReads: map[string][]byte{},
	}
}

// loader holds what one Load call has gathered so far.
type loader struct {
	fs      afero.Fs
	dir     string
	opts    LoadOptions
	environ map[string]string

	cfg   *Config
	diags hcl.Diagnostics

	// sources are the bytes of every file read, by name relative to dir,
	// for Config.Hash.
	sources map[string][]byte
	// fileReads are what file() and env() returned, for Config.Hash. The
	// mutex is there because EvalCtx outlives Load: plan evaluates provider
	// blocks, which may call them, possibly from several goroutines.
	fileReadsMu sync.Mutex
	fileReads   map[string][]byte

	funcs      map[string]function.Function
	vars       map[string]*varDecl
	varVals    map[string]cty.Value // final values, marked when sensitive
	localNames map[string]struct{}
	localVal   map[string]cty.Value
	topCtx     *hcl.EvalContext
}

var topSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "llorch"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "provider", LabelNames: []string{"name"}},
		{Type: "pool", LabelNames: []string{"name"}},
		{Type: "devices"},
	},
}

func (l *loader) load() {
	l.funcs = l.functions()
	byType, ok := l.parseAll()
	if !ok {
		sortDiags(l.diags)
		return
	}
	// The llorch block uses no variables, so it is known first.
	before := len(l.diags)
	l.decodeSettings(byType["llorch"])
	if l.opts.OnSettings != nil && !l.diags[before:].HasErrors() {
		l.opts.OnSettings(l.cfg.Settings)
	}
	l.decodeVariables(byType["variable"])
	l.assignVariables()
	l.validateVariables()
	l.evalLocals(byType["locals"])
	l.topCtx = &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   objectVal(l.varVals),
			"local": objectVal(l.localVal),
		},
		Functions: l.funcs,
	}
	l.decodeProviders(byType["provider"])
	l.decodeDevices(byType["devices"])
	l.decodePools(byType["pool"])
	l.checkPoolDevices()
	l.cfg.Hash = l.hash()
	sortDiags(l.diags)
}

// parseAll parses every configuration file and sorts the top-level blocks
// by type. It reports false when a file could not be read or parsed:
// nothing is decoded after a syntax error, to avoid follow-on noise.
func (l *loader) parseAll() (map[string][]*hcl.Block, bool) {
	names, err := l.configFileNames()
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to read directory",
			Detail:   fmt.Sprintf("The configuration directory %s could not be listed: %s.", l.dir, unwrapPathError(err)),
		})
		return nil, false
	}
	// Files are parsed concurrently (and a large one in pieces, see
	// parseHCL), then recorded in name order.
	type parsed struct {
		path  string
		src   []byte
		f     *hcl.File
		diags hcl.Diagnostics
	}
	all := make([]*parsed, 0, len(names))
	var wg sync.WaitGroup
	for _, name := range names {
		path, src, ok := l.readFile(name)
		if !ok {
			continue
		}
		p := &parsed{path: path, src: src}
		all = append(all, p)
		wg.Go(func() { p.f, p.diags = parseHCL(p.src, p.path) })
	}
	wg.Wait()
	files := make([]*hcl.File, 0, len(all))
	for _, p := range all {
		files = append(files, l.record(p.path, p.src, p.f, p.diags))
	}
	if l.diags.HasErrors() {
		return nil, false
	}
	byType := map[string][]*hcl.Block{}
	for _, f := range files {
		content, diags := f.Body.Content(topSchema)
		l.diags = append(l.diags, diags...)
		for _, b := range content.Blocks {
			byType[b.Type] = append(byType[b.Type], b)
		}
	}
	return byType, true
}

// sortDiags orders diagnostics as a reader meets them: those without a
// source first, then by file and position. Load finds problems in passes
// (variables, then locals, then pools), not in source order.
func sortDiags(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		default:
			return a.Start.Byte < b.Start.Byte
		}
	})
}

// configFileNames lists dir's *.llorch.hcl files, sorted by name.
func (l *loader) configFileNames() ([]string, error) {
	infos, err := afero.ReadDir(l.fs, l.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, fi := range infos {
		if !fi.IsDir() && strings.HasSuffix(fi.Name(), ConfigSuffix) {
			names = append(names, fi.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// autoVarFileNames lists dir's *.auto.llorchvars.hcl files, sorted by name.
func (l *loader) autoVarFileNames() []string {
	infos, err := afero.ReadDir(l.fs, l.dir)
	if err != nil {
		return nil // already reported by configFileNames
	}
	var names []string
	for _, fi := range infos {
		if !fi.IsDir() && strings.HasSuffix(fi.Name(), AutoVarsSuffix) {
			names = append(names, fi.Name())
		}
	}
	sort.Strings(names)
	return names
}

// parseFile reads and parses name (relative to dir, or absolute), records
// it in Config.Files and the hash sources, and returns nil when it could
// not be read.
func (l *loader) parseFile(name string) *hcl.File {
	path, src, ok := l.readFile(name)
	if !ok {
		return nil
	}
	f, diags := parseHCL(src, path)
	return l.record(path, src, f, diags)
}

// readFile reads name (relative to dir, or absolute), reporting a file it
// cannot read.
func (l *loader) readFile(name string) (path string, src []byte, ok bool) {
	path = name
	if !filepath.IsAbs(path) {
		path = filepath.Join(l.dir, name)
	}
	src, err := afero.ReadFile(l.fs, path)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Failed to read file",
			Detail:   fmt.Sprintf("The file %s could not be read: %s.", path, unwrapPathError(err)),
		})
		return path, nil, false
	}
	return path, src, true
}

// record keeps a parsed file in Config.Files and the hash sources, and its
// diagnostics.
func (l *loader) record(path string, src []byte, f *hcl.File, diags hcl.Diagnostics) *hcl.File {
	l.diags = append(l.diags, diags...)
	if f == nil {
		f = &hcl.File{Body: hcl.EmptyBody(), Bytes: src}
	}
	l.cfg.Files[path] = f
	l.sources[l.relName(path)] = src
	return f
}

// relName names path relative to the configuration directory when it is
// inside it, so Config.Hash does not change when the directory moves.
func (l *loader) relName(path string) string {
	rel, err := filepath.Rel(l.dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return filepath.ToSlash(rel)
}

// pos formats r's start as "file:line" for diagnostic details, with the
// file name relative to the configuration directory.
func (l *loader) pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d", l.relName(r.Filename), r.Start.Line)
}

func (l *loader) errorf(subject *hcl.Range, summary, format string, args ...any) {
	l.diags = append(l.diags, errorDiag(subject, summary, format, args...))
}

func errorDiag(subject *hcl.Range, summary, format string, args ...any) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject,
	}
}

func environMap(environ []string) map[string]string {
	if environ == nil {
		environ = os.Environ()
	}
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v // later entries win, as in exec.Cmd
		}
	}
	return m
}

// objectVal is cty.ObjectVal that accepts an empty map.
func objectVal(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// unwrapPathError drops the operation and path that *fs.PathError repeats,
// since the diagnostic already names the file.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
