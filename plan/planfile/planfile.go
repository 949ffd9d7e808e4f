package planfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/afero"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/render"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// FormatVersion is the saved plan format this build writes and the newest
// it reads.
const FormatVersion = 1

// Mode is the saved plan's file mode: it holds variable values, which may
// be secrets.
const Mode fs.FileMode = 0o600

// kind identifies a llorch plan file among other JSON files.
const kind = "llorch-plan"

// File is a saved plan.
type File struct {
	Kind          string  `json:"kind"` // "llorch-plan"
	FormatVersion int     `json:"format_version"`
	LlorchVersion string  `json:"llorch_version"`
	Lineage       string  `json:"lineage"`
	Serial        uint64  `json:"serial"`
	ConfigHash    string  `json:"config_hash"`
	Options       Options `json:"options"`
	// Variables are the input variable values the plan was made with, by
	// name, as given.
	Variables map[string]Variable `json:"variables"`
	// Observations are what refresh saw, by replica address.
	Observations map[string]Observation `json:"observations"`
	// Planned are the providers' PlanPool results, by pool address.
	Planned  map[string]Planned `json:"planned"`
	Warnings []string           `json:"warnings"`
	// Changes is the plan as `llorch plan -json` shows it: apply checks
	// that replaying the plan gives the same changes. `llorch show FILE`
	// renders the replayed plan, not a stored text.
	Changes *render.Document `json:"changes"`
	// Checksum is "sha256:" and the hex digest of the file encoded with
	// an empty checksum: a plan whose contents were edited is refused.
	Checksum string `json:"checksum"`
}

// Options are the plan's -target, -replace, -destroy and -refresh.
type Options struct {
	Targets []string `json:"targets"`
	Replace []string `json:"replace"`
	Destroy bool     `json:"destroy"`
	Refresh bool     `json:"refresh"`
}

// Variable is one input variable: its cty type and value, as cty's JSON.
type Variable struct {
	Type      json.RawMessage `json:"type"`
	Value     json.RawMessage `json:"value"`
	Sensitive bool            `json:"sensitive,omitempty"`
}

// Observation is one replica as refresh saw it.
type Observation struct {
	Status        string    `json:"status"`
	Alive         bool      `json:"alive"`
	PID           int       `json:"pid,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Cause         string    `json:"cause,omitempty"`
	BinaryChanged bool      `json:"binary_changed,omitempty"`
	ModelChanged  bool      `json:"model_changed,omitempty"`
	Restarts      int       `json:"restarts,omitempty"`
	CheckedAt     time.Time `json:"checked_at,omitzero"`
}

// Planned is one pool's PlanPool result.
type Planned struct {
	EngineVersion   string       `json:"engine_version"`
	RequiresReplace [][]PathStep `json:"requires_replace,omitempty"`
	Model           *ModelInfo   `json:"model,omitempty"`
	BinarySHA256    string       `json:"binary_sha256,omitempty"`
}

// PathStep is one step of a cty.Path: an attribute name, or an index (a
// string map key or a list index).
type PathStep struct {
	Attr  string   `json:"attr,omitempty"`
	Key   *string  `json:"key,omitempty"`
	Index *big.Int `json:"index,omitempty"`
}

// ModelInfo is GGUF metadata, as providers.ModelInfo.
type ModelInfo struct {
	Path          string `json:"path"`
	SizeBytes     int64  `json:"size_bytes"`
	Architecture  string `json:"architecture"`
	Parameters    uint64 `json:"parameters"`
	Quantization  string `json:"quantization"`
	ContextLength int    `json:"context_length"`
	SHA256        string `json:"sha256,omitempty"`
}

// New builds the saved form of p. vars are the configuration's final input
// variable values (config.Config.Variables' Value); a value marked
// sensitive is saved as such.
func New(p *plan.Plan, vars map[string]cty.Value) (*File, error) {
	f := &File{
		Kind:          kind,
		FormatVersion: FormatVersion,
		LlorchVersion: p.LlorchVersion,
		Lineage:       p.Lineage,
		Serial:        p.Serial,
		ConfigHash:    p.ConfigHash,
		Options: Options{
			Targets: nonNil(p.Options.Targets), Replace: nonNil(p.Options.Replace),
			Destroy: p.Options.Destroy, Refresh: p.Options.Refresh,
		},
		Variables:    map[string]Variable{},
		Observations: map[string]Observation{},
		Planned:      map[string]Planned{},
		Warnings:     nonNil(p.Warnings),
		Changes:      render.NewDocument(p),
	}
	for name, v := range vars {
		sv, err := saveVariable(v)
		if err != nil {
			return nil, fmt.Errorf("saving variable %q: %w", name, err)
		}
		f.Variables[name] = sv
	}
	for addr, o := range p.Observations {
		f.Observations[addr] = Observation(o)
	}
	for addr, pp := range p.Planned() {
		f.Planned[addr] = savePlanned(pp)
	}
	return f, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func saveVariable(v cty.Value) (Variable, error) {
	if v == cty.NilVal {
		v = cty.NullVal(cty.DynamicPseudoType)
	}
	sensitive := v.ContainsMarked()
	v, _ = v.UnmarkDeep()
	if !v.IsWhollyKnown() {
		return Variable{}, errors.New("the value is not known")
	}
	ty, err := ctyjson.MarshalType(v.Type())
	if err != nil {
		return Variable{}, err
	}
	val, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return Variable{}, err
	}
	return Variable{Type: ty, Value: val, Sensitive: sensitive}, nil
}

func savePlanned(pp *providers.PlannedPool) Planned {
	out := Planned{EngineVersion: pp.EngineVersion, BinarySHA256: pp.BinarySHA256}
	for _, p := range pp.RequiresReplace {
		out.RequiresReplace = append(out.RequiresReplace, savePath(p))
	}
	if m := pp.Model; m != nil {
		mi := ModelInfo(*m)
		out.Model = &mi
	}
	return out
}

func savePath(p cty.Path) []PathStep {
	steps := make([]PathStep, 0, len(p))
	for _, s := range p {
		switch s := s.(type) {
		case cty.GetAttrStep:
			steps = append(steps, PathStep{Attr: s.Name})
		case cty.IndexStep:
			switch {
			case s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull():
				k := s.Key.AsString()
				steps = append(steps, PathStep{Key: &k})
			case s.Key.Type() == cty.Number && s.Key.IsKnown() && !s.Key.IsNull():
				i, _ := s.Key.AsBigFloat().Int(nil)
				steps = append(steps, PathStep{Index: i})
			}
		}
	}
	return steps
}

func loadPath(steps []PathStep) cty.Path {
	var p cty.Path
	for _, s := range steps {
		switch {
		case s.Key != nil:
			p = p.Index(cty.StringVal(*s.Key))
		case s.Index != nil:
			p = p.Index(cty.NumberVal(new(big.Float).SetInt(s.Index)))
		default:
			p = p.GetAttr(s.Attr)
		}
	}
	return p
}

// Write saves p to path atomically with mode 0600.
func Write(fsys afero.Fs, path string, p *plan.Plan, vars map[string]cty.Value) error {
	f, err := New(p, vars)
	if err != nil {
		return fmt.Errorf("saving plan to %s: %w", path, err)
	}
	b, err := f.Encode()
	if err != nil {
		return fmt.Errorf("saving plan to %s: %w", path, err)
	}
	if err := atomicfile.Write(fsys, path, b, Mode); err != nil {
		return fmt.Errorf("saving plan: %w", err)
	}
	return nil
}

// Encode returns the file's bytes, indented JSON and a final newline, with
// the checksum of its contents.
func (f *File) Encode() ([]byte, error) {
	sum, err := f.payloadSum()
	if err != nil {
		return nil, err
	}
	cp := *f
	cp.Checksum = sum
	return cp.encode()
}

// payloadSum is the checksum of f's contents: of f encoded without one.
func (f *File) payloadSum() (string, error) {
	cp := *f
	cp.Checksum = ""
	b, err := cp.encode()
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:]), nil
}

func (f *File) encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encoding plan: %w", err)
	}
	return buf.Bytes(), nil
}

// Read loads the saved plan at path. It refuses a file that is not a llorch
// plan and one written in a newer format.
func Read(fsys afero.Fs, path string) (*File, error) {
	b, err := afero.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("reading saved plan: %w", err)
	}
	return Decode(b, path)
}

// Decode parses saved plan bytes; path names the file in errors.
func Decode(b []byte, path string) (*File, error) {
	notPlan := func(why string) error {
		return fmt.Errorf("%s is not a llorch plan file (%s); save a plan with llorch plan -out=FILE", path, why)
	}
	var head struct {
		Kind          string          `json:"kind"`
		FormatVersion json.RawMessage `json:"format_version"`
		LlorchVersion string          `json:"llorch_version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, notPlan("it is not JSON")
	}
	if head.Kind != kind {
		return nil, notPlan(fmt.Sprintf("it has no \"kind\": %q", kind))
	}
	var version int
	if err := json.Unmarshal(head.FormatVersion, &version); err != nil || version < 1 {
		return nil, notPlan(fmt.Sprintf("format_version %s is not a positive whole number", bytes.TrimSpace(head.FormatVersion)))
	}
	if version > FormatVersion {
		by := ""
		if head.LlorchVersion != "" {
			by = " by llorch " + head.LlorchVersion
		}
		return nil, fmt.Errorf("%s was written%s in plan format %d, but this llorch reads format %d at most; apply it with that llorch or a newer one, or run llorch plan again", path, by, version, FormatVersion)
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s is a damaged plan file: %w; run llorch plan again", path, err)
	}
	// The contents are checked as decoded, so only a change of what the
	// plan says counts, not of its layout.
	sum, err := f.payloadSum()
	if err != nil {
		return nil, fmt.Errorf("%s is a damaged plan file: %w; run llorch plan again", path, err)
	}
	switch f.Checksum {
	case sum:
	case "":
		return nil, fmt.Errorf("%s has no checksum: it was modified, or saved by a llorch that wrote none; llorch applies only a plan exactly as saved, so run llorch plan -out=%s again", path, path)
	default:
		return nil, fmt.Errorf("%s was modified after llorch saved it (its contents no longer match its checksum); llorch applies only a plan exactly as saved, so run llorch plan -out=%s again", path, path)
	}
	return &f, nil
}

// Saved returns what plan.Planner.Replay needs to rebuild the plan.
func (f *File) Saved() plan.Saved {
	s := plan.Saved{
		Options: plan.Options{
			Targets: nilIfEmpty(f.Options.Targets), Replace: nilIfEmpty(f.Options.Replace),
			Destroy: f.Options.Destroy, Refresh: f.Options.Refresh,
		},
		Observations: plan.Observations{},
		Planned:      map[string]*providers.PlannedPool{},
		Warnings:     slices.Clone(f.Warnings),
	}
	for addr, o := range f.Observations {
		s.Observations[addr] = plan.Observed(o)
	}
	for addr, pp := range f.Planned {
		out := &providers.PlannedPool{EngineVersion: pp.EngineVersion, BinarySHA256: pp.BinarySHA256}
		for _, steps := range pp.RequiresReplace {
			out.RequiresReplace = append(out.RequiresReplace, loadPath(steps))
		}
		if pp.Model != nil {
			m := providers.ModelInfo(*pp.Model)
			out.Model = &m
		}
		s.Planned[addr] = out
	}
	return s
}

// VariableValues returns the saved variable values; sensitive ones carry
// config.SensitiveMark again.
func (f *File) VariableValues() (map[string]cty.Value, error) {
	out := make(map[string]cty.Value, len(f.Variables))
	for name, v := range f.Variables {
		ty, err := ctyjson.UnmarshalType(v.Type)
		if err != nil {
			return nil, fmt.Errorf("saved variable %q has an invalid type: %w", name, err)
		}
		val, err := ctyjson.Unmarshal(v.Value, ty)
		if err != nil {
			return nil, fmt.Errorf("saved variable %q has an invalid value: %w", name, err)
		}
		if v.Sensitive {
			val = val.Mark(config.SensitiveMark)
		}
		out[name] = val
	}
	return out, nil
}

// VarArgs returns the saved variable values as -var arguments, sorted by
// name, so that loading the configuration with them gives the values the
// plan was made with: a string as itself, anything else as an HCL
// expression.
func (f *File) VarArgs() ([]config.VarArg, error) {
	vals, err := f.VariableValues()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]config.VarArg, 0, len(names))
	for _, n := range names {
		v, _ := vals[n].Unmark()
		if v.IsNull() {
			continue // unset: the configuration's default applies again
		}
		if v.Type() == cty.String {
			out = append(out, config.VarArg{Name: n, Value: v.AsString()})
			continue
		}
		out = append(out, config.VarArg{Name: n, Value: string(hclwrite.TokensForValue(v).Bytes())})
	}
	return out, nil
}

// StaleKind says what makes a saved plan stale.
type StaleKind int

const (
	StaleLineage StaleKind = iota + 1 // made against another state
	StaleSerial                       // the state was written since
	StaleConfig                       // the configuration or variables changed since
)

// StaleError is a saved plan that can no longer be applied. Summary and
// Detail are ready for an hcl.Diagnostic.
type StaleError struct {
	Kind    StaleKind
	Summary string
	Detail  string
}

func (e *StaleError) Error() string { return e.Summary + ": " + e.Detail }

// CheckCurrent returns a *StaleError when the plan was made against another
// state (lineage), an older snapshot of it (serial), or another
// configuration (configHash, config.Config.Hash).
func (f *File) CheckCurrent(st *state.State, configHash string) error {
	if st == nil {
		st = &state.State{}
	}
	switch {
	case f.Lineage != st.Lineage:
		return &StaleError{
			Kind:    StaleLineage,
			Summary: "Saved plan is for a different state",
			Detail: fmt.Sprintf("The plan was made against lineage %s, but the current state has lineage %s. Run llorch plan again.",
				orNone(f.Lineage), orNone(st.Lineage)),
		}
	case f.Serial != st.Serial:
		return &StaleError{
			Kind:    StaleSerial,
			Summary: "Saved plan is stale",
			Detail: fmt.Sprintf("The state changed (serial %d → %d) after the plan was made. Run llorch plan again.",
				f.Serial, st.Serial),
		}
	case f.ConfigHash != configHash:
		return &StaleError{
			Kind:    StaleConfig,
			Summary: "Saved plan is stale",
			Detail:  "The configuration changed after the plan was made (files or variable values differ). Run llorch plan again.",
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// CheckReplay confirms that a plan rebuilt with plan.Planner.Replay makes
// exactly the changes the saved plan showed, so apply never does something
// the operator did not see.
func (f *File) CheckReplay(p *plan.Plan) error {
	want := render.NewDocument(p)
	if f.Changes == nil {
		return errors.New("the saved plan holds no changes; run llorch plan again")
	}
	type key struct {
		addr, actions, replicas string
	}
	collect := func(d *render.Document) []key {
		var out []key
		for _, rc := range d.ResourceChanges {
			if len(rc.Change.Actions) == 1 && rc.Change.Actions[0] == "no-op" {
				continue
			}
			out = append(out, key{rc.Address, fmt.Sprint(rc.Change.Actions), fmt.Sprint(rc.Replicas)})
		}
		return out
	}
	saved, got := collect(f.Changes), collect(want)
	if !slices.Equal(saved, got) {
		return fmt.Errorf("the saved plan no longer replays to the same changes (saved %d, now %d); run llorch plan again", len(saved), len(got))
	}
	return nil
}
