package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/llorch/llorch/internal/didyoumean"
	"github.com/llorch/llorch/internal/parallel"
)

var settingsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "state_dir"}, {Name: "handoff_dir"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "backend", LabelNames: []string{"type"}}},
}

// nestedSchemas are the pool's fixed nested blocks, in the order nestedOrder
// lists them.
var nestedSchemas = map[string]*hcl.BodySchema{
	"model": {Attributes: []hcl.AttributeSchema{{Name: "ref"}, {Name: "sha256"}}},
	"health": {Attributes: []hcl.AttributeSchema{
		{Name: "path"}, {Name: "interval"}, {Name: "start_timeout"}, {Name: "live_interval"}, {Name: "failures"},
	}, Blocks: []hcl.BlockHeaderSchema{{Type: "smoke"}}},
	"restart": {Attributes: []hcl.AttributeSchema{
		{Name: "policy"}, {Name: "initial_backoff"}, {Name: "max_backoff"}, {Name: "multiplier"},
		{Name: "jitter"}, {Name: "reset_after"}, {Name: "max_failures"}, {Name: "cooldown"},
	}},
	"drain":  {Attributes: []hcl.AttributeSchema{{Name: "deadline"}, {Name: "kill_timeout"}}},
	"update": {Attributes: []hcl.AttributeSchema{{Name: "strategy"}}},
}

var nestedOrder = []string{"model", "health", "restart", "drain", "update"}

var poolAttributes = []hcl.AttributeSchema{
	{Name: "engine"}, {Name: "replicas"}, {Name: "host"}, {Name: "port"}, {Name: "devices"},
	{Name: "ctx"}, {Name: "flags"}, {Name: "env"}, {Name: "labels"}, {Name: "count"}, {Name: "for_each"},
	{Name: "fit"},
}

var (
	restartPolicies  = []string{RestartAlways, RestartOnFailure, RestartNever}
	updateStrategies = []string{CreateBeforeDestroy, DrainFirst}
)

// nestedIndex is nestedSchemas, indexed.
var nestedIndex = func() map[string]*schemaIndex {
	m := make(map[string]*schemaIndex, len(nestedSchemas))
	for name, s := range nestedSchemas {
		m[name] = indexSchema(s)
	}
	return m
}()

// poolSchema is the pool body's schema: the fixed attributes and blocks,
// and one block per known engine, so hclsyntax can suggest names for typos
// in any of them.
func (l *loader) poolSchema() *hcl.BodySchema {
	s := &hcl.BodySchema{Attributes: poolAttributes}
	for _, name := range nestedOrder {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: name})
	}
	for _, e := range l.opts.Engines {
		if _, fixed := nestedSchemas[e]; !fixed {
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: e})
		}
	}
	return s
}

func (l *loader) decodeSettings(blocks []*hcl.Block) {
	s := Settings{}
	for i, b := range blocks {
		if i > 0 {
			l.errorf(b.DefRange.Ptr(), "Duplicate llorch block",
				"Only one llorch block is allowed. Another was defined at %s.", l.pos(blocks[0].DefRange))
			continue
		}
		s.DeclRange = b.DefRange
		content, diags := b.Body.Content(settingsSchema)
		l.diags = append(l.diags, diags...)
		s.Backend = l.decodeBackend(content.Blocks)
		for _, name := range []string{"state_dir", "handoff_dir"} {
			a, ok := content.Attributes[name]
			if !ok {
				continue
			}
			// No variables: commands that only need the state's location
			// read this block without -var values (see LoadSettings).
			val, diags := a.Expr.Value(&hcl.EvalContext{Functions: l.funcs})
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() || !val.IsWhollyKnown() {
				continue
			}
			val, err := convert.Convert(unmarked(val), cty.String)
			if err != nil {
				l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", name, err)
				continue
			}
			if val.IsNull() {
				continue
			}
			if strings.TrimSpace(val.AsString()) == "" {
				l.errorf(a.Expr.Range().Ptr(), "Invalid directory",
					"%s must not be empty. Remove the attribute to use the default.", name)
				continue
			}
			if name == "state_dir" {
				s.StateDir = val.AsString()
			} else {
				s.HandoffDir = val.AsString()
			}
		}
	}
	if s.StateDir == "" {
		s.StateDir = DefaultStateDir
	}
	if s.HandoffDir == "" {
		s.HandoffDir = filepath.Join(s.StateDir, "handoff")
	}
	l.cfg.Settings = s
}

// defaultSettings are the settings without a llorch block; Load starts
// from them so that even a Config returned with errors has usable
// directories.
func defaultSettings() Settings {
	return Settings{StateDir: DefaultStateDir, HandoffDir: filepath.Join(DefaultStateDir, "handoff")}
}

func (l *loader) decodeProviders(blocks []*hcl.Block) {
	for _, b := range blocks {
		name := b.Labels[0]
		if !slices.Contains(l.opts.Engines, name) {
			l.diags = append(l.diags, l.unknownEngine(b.LabelRanges[0], name))
			continue
		}
		if prev, ok := l.cfg.Providers[name]; ok {
			l.errorf(b.DefRange.Ptr(), "Duplicate provider block",
				"Only one provider %q block is allowed. Another was defined at %s.", name, l.pos(prev.DeclRange))
			continue
		}
		l.diags = append(l.diags, l.checkBodyRefs(b.Body, scope{})...)
		l.cfg.Providers[name] = &ProviderBlock{Name: name, Body: b.Body, EvalCtx: l.topCtx, DeclRange: b.DefRange}
	}
}

func (l *loader) unknownEngine(subject hcl.Range, name string) *hcl.Diagnostic {
	suggestion := ""
	if s := didyoumean.NameSuggestion(name, l.opts.Engines); s != "" {
		suggestion = fmt.Sprintf(" Did you mean %q?", s)
	}
	var known string
	switch len(l.opts.Engines) {
	case 0:
		known = "There are no known engines."
	case 1:
		known = fmt.Sprintf("The only known engine is %q.", l.opts.Engines[0])
	default:
		known = "The known engines are " + orList(slices.Sorted(slices.Values(l.opts.Engines)), "and") + "."
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unknown engine",
		Detail: fmt.Sprintf("There is no engine named %q.%s %s A third-party engine needs its provider plugin, llorch-provider-%s, in .llorch/plugins, $LLORCH_PLUGIN_DIR or ~/.llorch/plugins.",
			name, suggestion, known, name),
		Subject: subject.Ptr(),
	}
}

// poolBlock is a pool block after structural decoding, before evaluation.
type poolBlock struct {
	block        *hcl.Block
	attrs        hcl.Attributes
	nested       map[string]*nestedBlock
	engineBlocks []*hcl.Block
}

type nestedBlock struct {
	block  *hcl.Block
	attrs  hcl.Attributes
	blocks hcl.Blocks // health's smoke
}

func (l *loader) decodePools(blocks []*hcl.Block) {
	declared := map[string]*hcl.Block{}
	schema := indexSchema(l.poolSchema())
	var unique []*hcl.Block
	for _, b := range blocks {
		name := b.Labels[0]
		if !validIdentifier(name) {
			l.errorf(b.LabelRanges[0].Ptr(), "Invalid pool name", "%q is not a valid pool name. %s", name, nameRule)
			continue
		}
		if prev, ok := declared[name]; ok {
			l.errorf(b.DefRange.Ptr(), "Duplicate pool name",
				"A pool named %q was already declared at %s. Pool names must be unique across all *.llorch.hcl files.",
				name, l.pos(prev.DefRange))
			continue
		}
		declared[name] = b
		unique = append(unique, b)
	}
	// Pool blocks are independent and only read the loader: decode them
	// on every core, then gather pools and diagnostics in block order, as
	// one at a time would.
	pools := make([][]*Pool, len(unique))
	diags := make([]hcl.Diagnostics, len(unique))
	_ = parallel.For(context.Background(), len(unique), runtime.GOMAXPROCS(0), func(i int) {
		b := unique[i]
		pb, d := l.decodePoolBlock(b, schema)
		if pb != nil {
			var more hcl.Diagnostics
			pools[i], more = l.expandPool(pb)
			d = append(d, more...)
		}
		diags[i] = d
	})
	for i := range unique {
		l.cfg.Pools = append(l.cfg.Pools, pools[i]...)
		l.diags = append(l.diags, diags[i]...)
	}
	sort.SliceStable(l.cfg.Pools, func(i, j int) bool { return l.cfg.Pools[i].Addr < l.cfg.Pools[j].Addr })
	l.checkPoolIDs()
	l.checkPorts()
}

// decodePoolBlock checks a pool block's structure once, whatever its
// count or for_each, so structural errors are reported once.
func (l *loader) decodePoolBlock(b *hcl.Block, schema *schemaIndex) (*poolBlock, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	errorf := func(subject *hcl.Range, summary, format string, args ...any) {
		diags = append(diags, errorDiag(subject, summary, format, args...))
	}
	content, cd := schema.content(b.Body)
	diags = append(diags, cd...)
	pb := &poolBlock{block: b, attrs: content.Attributes, nested: map[string]*nestedBlock{}}
	for _, nb := range content.Blocks {
		if s, ok := nestedIndex[nb.Type]; ok {
			if prev, dup := pb.nested[nb.Type]; dup {
				errorf(nb.DefRange.Ptr(), fmt.Sprintf("Duplicate %s block", nb.Type),
					"Only one %s block is allowed in a pool. Another was defined at %s.", nb.Type, l.pos(prev.block.DefRange))
				continue
			}
			c, cd := s.content(nb.Body)
			diags = append(diags, cd...)
			pb.nested[nb.Type] = &nestedBlock{block: nb, attrs: c.Attributes, blocks: c.Blocks}
			continue
		}
		if i := slices.IndexFunc(pb.engineBlocks, func(e *hcl.Block) bool { return e.Type == nb.Type }); i >= 0 {
			errorf(nb.DefRange.Ptr(), fmt.Sprintf("Duplicate %s block", nb.Type),
				"Only one %s block is allowed in a pool. Another was defined at %s.", nb.Type, l.pos(pb.engineBlocks[i].DefRange))
			continue
		}
		pb.engineBlocks = append(pb.engineBlocks, nb)
	}

	if _, ok := pb.attrs["engine"]; !ok {
		errorf(b.Body.MissingItemRange().Ptr(), "Missing required argument",
			`The argument "engine" is required, but no definition was found. Set it to the provider that runs this pool, like engine = "llamacpp".`)
	}
	if m, ok := pb.nested["model"]; !ok {
		errorf(b.Body.MissingItemRange().Ptr(), "Missing model block",
			`A pool needs a model block saying which model to serve, like model { ref = "hf:org/repo/model.gguf" }.`)
	} else if _, ok := m.attrs["ref"]; !ok {
		errorf(m.block.Body.MissingItemRange().Ptr(), "Missing required argument",
			`The argument "ref" is required in the model block, but no definition was found. Set it to where the model comes from, like ref = "file:/srv/models/model.gguf".`)
	}

	countAttr, hasCount := pb.attrs["count"]
	forEachAttr, hasForEach := pb.attrs["for_each"]
	if hasCount && hasForEach {
		errorf(forEachAttr.NameRange.Ptr(), `Invalid combination of "count" and "for_each"`,
			`The "count" and "for_each" arguments are mutually exclusive: use count for a number of identical pools, or for_each for one pool per key. The count is at %s.`,
			l.pos(countAttr.Range))
		return nil, diags
	}
	sc := scope{each: hasForEach, count: hasCount}
	for _, eb := range pb.engineBlocks {
		diags = append(diags, l.checkBodyRefs(eb.Body, sc)...)
	}
	return pb, diags
}

// instance is one pool instance to decode: its key and the each or count
// object in scope.
type instance struct {
	key   cty.Value // cty.NilVal without count or for_each
	each  cty.Value // each.value for for_each
	count bool
}

func (l *loader) expandPool(pb *poolBlock) ([]*Pool, hcl.Diagnostics) {
	var (
		insts []instance
		diags hcl.Diagnostics
	)
	switch {
	case pb.attrs["count"] != nil:
		n, d, ok := l.evalCount(pb.attrs["count"])
		diags = d
		if !ok {
			return nil, diags
		}
		for i := range n {
			insts = append(insts, instance{key: cty.NumberIntVal(int64(i)), count: true})
		}
	case pb.attrs["for_each"] != nil:
		keys, vals, d, ok := l.evalForEach(pb.attrs["for_each"])
		diags = d
		if !ok {
			return nil, diags
		}
		for i, k := range keys {
			insts = append(insts, instance{key: cty.StringVal(k), each: vals[i]})
		}
	default:
		insts = []instance{{}}
	}
	// Instances share their source, so the same mistake would otherwise be
	// reported once per instance.
	var instDiags hcl.Diagnostics
	pools := make([]*Pool, 0, len(insts))
	for _, inst := range insts {
		p, d := l.decodeInstance(pb, inst)
		instDiags = appendUnique(instDiags, d)
		pools = append(pools, p)
	}
	return pools, append(diags, instDiags...)
}

func (l *loader) evalCount(a *hcl.Attribute) (int, hcl.Diagnostics, bool) {
	val, diags := l.eval(a.Expr, l.topCtx, scope{})
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return 0, diags, false
	}
	fail := func(format string, args ...any) (int, hcl.Diagnostics, bool) {
		return 0, append(diags, errorDiag(a.Expr.Range().Ptr(), "Invalid count argument", format, args...)), false
	}
	if val.ContainsMarked() {
		return fail(`The "count" value comes from a sensitive value, which would show in pool addresses. Use a value that is not sensitive.`)
	}
	if val.IsNull() {
		return fail(`The "count" value is null. A whole number, 0 or more, is required.`)
	}
	num, err := convert.Convert(val, cty.Number)
	if err != nil {
		return fail(`The "count" value is unsuitable: %s.`, err)
	}
	n, ok := wholeInt(num)
	if !ok || n < 0 {
		return fail(`The "count" value must be a whole number, 0 or more, but it is %s.`, formatNumber(num))
	}
	return n, diags, true
}

// evalForEach returns the for_each keys in order with each.value for each.
func (l *loader) evalForEach(a *hcl.Attribute) ([]string, []cty.Value, hcl.Diagnostics, bool) {
	val, diags := l.eval(a.Expr, l.topCtx, scope{})
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return nil, nil, diags, false
	}
	fail := func(format string, args ...any) ([]string, []cty.Value, hcl.Diagnostics, bool) {
		return nil, nil, append(diags, errorDiag(a.Expr.Range().Ptr(), "Invalid for_each argument", format, args...)), false
	}
	if val.IsMarked() {
		return fail(`The "for_each" value comes from a sensitive value, which would show in pool addresses. Use a value that is not sensitive.`)
	}
	if val.IsNull() {
		return fail(`The "for_each" value is null. A map, or a set of strings, is required.`)
	}
	ty := val.Type()
	var keys []string
	var vals []cty.Value
	switch {
	case ty.IsSetType():
		if ty.ElementType() != cty.String {
			return fail(`The "for_each" value is a set of %s, but only sets of strings can be used: the strings become the pool keys.`, ty.ElementType().FriendlyName())
		}
		for it := val.ElementIterator(); it.Next(); {
			_, v := it.Element()
			if v.IsMarked() {
				return fail(`The "for_each" set contains a sensitive value, which would show in pool addresses. Use values that are not sensitive.`)
			}
			if v.IsNull() {
				return fail(`The "for_each" set contains null. Every element must be a string.`)
			}
			keys = append(keys, v.AsString())
			vals = append(vals, v)
		}
	case ty.IsMapType() || ty.IsObjectType():
		for it := val.ElementIterator(); it.Next(); {
			k, v := it.Element()
			keys = append(keys, k.AsString())
			vals = append(vals, v)
		}
	case ty.IsListType() || ty.IsTupleType():
		return fail(`The "for_each" value must be a map, or a set of strings, and this is a %s. Convert a list with toset(), like for_each = toset(["a", "b"]).`, ty.FriendlyName())
	default:
		return fail(`The "for_each" value must be a map, or a set of strings, and this is a %s.`, ty.FriendlyName())
	}
	// Sets and maps iterate in key order already; sorting keeps that a
	// property of this function rather than of cty.
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return keys[idx[i]] < keys[idx[j]] })
	sk, sv := make([]string, len(keys)), make([]cty.Value, len(keys))
	for i, j := range idx {
		sk[i], sv[i] = keys[j], vals[j]
	}
	return sk, sv, diags, true
}

// decodeInstance evaluates one pool instance.
func (l *loader) decodeInstance(pb *poolBlock, inst instance) (*Pool, hcl.Diagnostics) {
	name := pb.block.Labels[0]
	p := &Pool{
		Addr:       poolAddr(name, inst.key),
		Name:       name,
		Key:        inst.key,
		ID:         poolID(name, inst.key),
		Replicas:   1,
		Host:       DefaultHost,
		Health:     DefaultHealth,
		Restart:    DefaultRestart,
		Drain:      DefaultDrain,
		Update:     DefaultUpdate,
		Fit:        FitError,
		DeclRange:  pb.block.DefRange,
		AttrRanges: map[string]hcl.Range{},
	}
	ctx := l.topCtx
	sc := scope{}
	switch {
	case inst.count:
		ctx = l.topCtx.NewChild()
		ctx.Variables = map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": inst.key})}
		sc.count = true
	case inst.key != cty.NilVal:
		ctx = l.topCtx.NewChild()
		ctx.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": inst.key, "value": inst.each})}
		sc.each = true
	}
	p.EvalCtx = ctx
	d := &poolDecoder{l: l, ctx: ctx, sc: sc, p: p, sensitive: map[string]bool{}}
	d.decode(pb)
	if len(d.sensitive) > 0 {
		p.SensitivePaths = sortedKeys(d.sensitive)
	}
	return p, d.diags
}

// poolDecoder evaluates one pool instance's attributes into a Pool.
type poolDecoder struct {
	l         *loader
	ctx       *hcl.EvalContext
	sc        scope
	p         *Pool
	diags     hcl.Diagnostics
	sensitive map[string]bool
}

func (d *poolDecoder) errorf(subject hcl.Range, summary, format string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  subject.Ptr(),
	})
}

func (d *poolDecoder) decode(pb *poolBlock) {
	p, attrs := d.p, pb.attrs
	engines := d.l.opts.Engines

	if s, a, ok := d.string(attrs, "engine", "engine"); ok {
		if !slices.Contains(engines, s) {
			d.diags = append(d.diags, d.l.unknownEngine(a.Expr.Range(), s))
		} else {
			p.Engine = s
		}
	}
	if n, a, ok := d.int(attrs, "replicas", "replicas"); ok {
		if n < 1 {
			d.errorf(a.Expr.Range(), "Invalid replica count",
				"replicas must be at least 1, but it is %s. To remove every replica of this pool, remove the pool block, or run llorch destroy -target='%s'.",
				d.show("replicas", strconv.Itoa(n)), p.Addr)
		} else {
			p.Replicas = n
		}
	}
	if s, a, ok := d.string(attrs, "host", "host"); ok {
		if !validHost(s) {
			d.errorf(a.Expr.Range(), "Invalid host",
				`%s is not a host name or IP address. Use the address the engine should listen on, like "127.0.0.1", "0.0.0.0" or "::1".`,
				d.quote("host", s))
		} else {
			p.Host = s
		}
	}
	if n, a, ok := d.int(attrs, "port", "port"); ok {
		switch {
		case n < 0 || n > 65535:
			d.errorf(a.Expr.Range(), "Invalid port",
				"port %s is outside the range 1–65535. Use 0, or leave port out, to pick free ports at apply time.", d.show("port", strconv.Itoa(n)))
		case n > 0 && n+p.Replicas-1 > 65535:
			d.errorf(a.Expr.Range(), "Invalid port",
				"With port %s and %d replicas, the last replica (r%d) would listen on port %s, above 65535. Use a lower port or fewer replicas.",
				d.show("port", strconv.Itoa(n)), p.Replicas, p.Replicas-1, d.show("port", strconv.Itoa(n+p.Replicas-1)))
		default:
			p.Port = n
		}
	}
	if a, ok := attrs["devices"]; ok {
		d.devices(a)
	}
	if n, a, ok := d.int(attrs, "ctx", "ctx"); ok {
		if n < 0 {
			d.errorf(a.Expr.Range(), "Invalid context size",
				"ctx must be 0 or more, but it is %s. Use 0 for the model's own context length.", d.show("ctx", strconv.Itoa(n)))
		} else {
			p.Ctx = n
		}
	}
	if v, a, ok := d.value(attrs["flags"], "flags", cty.List(cty.String)); ok {
		p.Flags = stringSlice(v)
		if d.sensitive["flags"] {
			// Engine arguments are world-readable (ps, /proc/PID/cmdline);
			// the engine's environment is its owner's alone.
			d.errorf(a.Expr.Range(), "Sensitive value in flags",
				"flags holds a value from a sensitive variable, and engine arguments are visible to every user of "+
					"this machine (ps, /proc/PID/cmdline). Pass it through env instead, which only the engine's owner "+
					"can read: llama-server reads its options from LLAMA_ARG_* variables too (for example "+
					"env = { LLAMA_ARG_ALIAS = var.alias } for --alias), and llamacpp { api_key = ... } sets LLAMA_API_KEY.")
		}
	}
	if v, a, ok := d.value(attrs["env"], "env", cty.Map(cty.String)); ok {
		p.Env = stringMap(v)
		for _, k := range sortedKeys(p.Env) {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				d.errorf(a.Expr.Range(), "Invalid environment variable name",
					"%s cannot be an environment variable name: names must be non-empty and contain no \"=\".", d.quote("env", k))
			}
		}
	}
	if v, _, ok := d.value(attrs["labels"], "labels", cty.Map(cty.String)); ok {
		p.Labels = stringMap(v)
	}
	if s, a, ok := d.string(attrs, "fit", "fit"); ok {
		if d.enum(a, "fit", s, "Invalid fit mode", "a fit mode", fitModes) {
			p.Fit = s
		}
	}

	if nb := pb.nested["model"]; nb != nil {
		p.AttrRanges["model"] = nb.block.DefRange
		d.model(nb.attrs)
	}
	if nb := pb.nested["health"]; nb != nil {
		p.AttrRanges["health"] = nb.block.DefRange
		d.health(nb.attrs)
		d.smoke(nb.blocks)
	}
	if nb := pb.nested["restart"]; nb != nil {
		p.AttrRanges["restart"] = nb.block.DefRange
		d.restart(nb.attrs)
	}
	if nb := pb.nested["drain"]; nb != nil {
		p.AttrRanges["drain"] = nb.block.DefRange
		if v, _, ok := d.duration(nb.attrs, "deadline", "drain.deadline", false); ok {
			p.Drain.Deadline = v
		}
		if v, _, ok := d.duration(nb.attrs, "kill_timeout", "drain.kill_timeout", true); ok {
			p.Drain.KillTimeout = v
		}
	}
	if nb := pb.nested["update"]; nb != nil {
		p.AttrRanges["update"] = nb.block.DefRange
		if s, a, ok := d.string(nb.attrs, "strategy", "update.strategy"); ok {
			if d.enum(a, "update.strategy", s, "Invalid update strategy", "an update strategy", updateStrategies) {
				p.Update.Strategy = s
			}
		}
	}

	for _, eb := range pb.engineBlocks {
		if p.Engine == "" {
			continue // engine missing or wrong: already reported
		}
		if eb.Type != p.Engine {
			d.errorf(eb.DefRange, "Block does not match engine",
				"This pool's engine is %q, so a %s block does not apply to it. Rename the block to %s, or change engine to %q.",
				p.Engine, eb.Type, p.Engine, eb.Type)
			continue
		}
		p.ProviderBody = eb.Body
		p.AttrRanges[eb.Type] = eb.DefRange
	}
}

func (d *poolDecoder) devices(a *hcl.Attribute) {
	v, _, ok := d.value(a, "devices", cty.List(cty.Number))
	if !ok {
		return
	}
	devices := make([]int, 0, v.LengthInt())
	valid := true
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		i, _ := k.AsBigFloat().Int64()
		n, whole := wholeInt(ev)
		switch {
		case !whole || n < 0:
			d.errorf(a.Expr.Range(), "Invalid device index",
				"devices[%d] is %s, but device indices are GPU numbers: whole numbers, 0 or more.", i, d.show("devices", formatNumber(ev)))
			valid = false
		case slices.Contains(devices, n):
			d.errorf(a.Expr.Range(), "Duplicate device index",
				"devices lists GPU %s more than once. List each GPU once.", d.show("devices", strconv.Itoa(n)))
			valid = false
		default:
			devices = append(devices, n)
		}
	}
	if valid {
		d.p.Devices = devices
	}
}

func (d *poolDecoder) model(attrs hcl.Attributes) {
	m := &d.p.Model
	if s, a, ok := d.string(attrs, "ref", "model.ref"); ok {
		if problem := checkModelRef(s); problem != "" {
			d.errorf(a.Expr.Range(), "Invalid model reference", "%s %s", d.quote("model.ref", s), problem)
		} else {
			m.Ref = s
		}
	}
	if s, a, ok := d.string(attrs, "sha256", "model.sha256"); ok {
		if len(s) != 64 {
			d.errorf(a.Expr.Range(), "Invalid sha256",
				"%s is not a SHA-256 digest: it must be exactly 64 hexadecimal characters, and it has %d.", d.quote("model.sha256", s), len(s))
		} else if !isHex(s) {
			d.errorf(a.Expr.Range(), "Invalid sha256",
				"%s is not a SHA-256 digest: it must contain only hexadecimal characters (0-9, a-f).", d.quote("model.sha256", s))
		} else {
			m.SHA256 = strings.ToLower(s)
		}
	}
}

func (d *poolDecoder) health(attrs hcl.Attributes) {
	h := &d.p.Health
	if s, a, ok := d.string(attrs, "path", "health.path"); ok {
		if !strings.HasPrefix(s, "/") {
			d.errorf(a.Expr.Range(), "Invalid health path", `%s must start with "/", like "/health".`, d.quote("health.path", s))
		} else {
			h.Path = s
		}
	}
	if v, _, ok := d.duration(attrs, "interval", "health.interval", true); ok {
		h.Interval = v
	}
	if v, _, ok := d.duration(attrs, "start_timeout", "health.start_timeout", true); ok {
		h.StartTimeout = v
	}
	if v, _, ok := d.duration(attrs, "live_interval", "health.live_interval", true); ok {
		h.LiveInterval = v
	}
	if n, a, ok := d.int(attrs, "failures", "health.failures"); ok {
		if n < 1 {
			d.errorf(a.Expr.Range(), "Invalid failure count",
				"health.failures must be at least 1, but it is %s: it is how many liveness probes in a row must fail before a restart.", d.show("health.failures", strconv.Itoa(n)))
		} else {
			h.Failures = n
		}
	}
}

var smokeSchema = indexSchema(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "prompt", Required: true}, {Name: "n_predict"}, {Name: "expect"}, {Name: "timeout"},
}})

// smoke decodes health's smoke block: readiness waits for a completion.
func (d *poolDecoder) smoke(blocks hcl.Blocks) {
	for i, b := range blocks {
		if i > 0 {
			d.errorf(b.DefRange, "Duplicate smoke block", "Only one smoke block is allowed in a health block. Another was defined at %s.", d.l.pos(blocks[0].DefRange))
			return
		}
		c, diags := smokeSchema.content(b.Body)
		if diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			return
		}
		d.p.AttrRanges["health.smoke"] = b.DefRange
		sm := DefaultSmoke
		if s, a, ok := d.string(c.Attributes, "prompt", "health.smoke.prompt"); ok {
			if s == "" {
				d.errorf(a.Expr.Range(), "Empty smoke prompt", "health.smoke.prompt must be a prompt the model completes, like \"The capital of France is\".")
			}
			sm.Prompt = s
		}
		if n, a, ok := d.int(c.Attributes, "n_predict", "health.smoke.n_predict"); ok {
			if n < 1 {
				d.errorf(a.Expr.Range(), "Invalid smoke n_predict",
					"health.smoke.n_predict must be at least 1, but it is %d: it is how many tokens the smoke completion asks for.", n)
			}
			sm.NPredict = n
		}
		if s, a, ok := d.string(c.Attributes, "expect", "health.smoke.expect"); ok {
			if _, err := regexp.Compile(s); err != nil {
				d.errorf(a.Expr.Range(), "Invalid smoke expect",
					"health.smoke.expect must be a regular expression (Go syntax) the completion must match: %s.", err)
			}
			sm.Expect = s
		}
		if v, _, ok := d.duration(c.Attributes, "timeout", "health.smoke.timeout", true); ok {
			sm.Timeout = v
		}
		d.p.Health.Smoke = &sm
	}
}

func (d *poolDecoder) restart(attrs hcl.Attributes) {
	r := &d.p.Restart
	if s, a, ok := d.string(attrs, "policy", "restart.policy"); ok {
		if d.enum(a, "restart.policy", s, "Invalid restart policy", "a restart policy", restartPolicies) {
			r.Policy = s
		}
	}
	initial, initialAttr, initialOK := d.duration(attrs, "initial_backoff", "restart.initial_backoff", false)
	if initialOK {
		r.InitialBackoff = initial
	}
	maxB, maxAttr, maxOK := d.duration(attrs, "max_backoff", "restart.max_backoff", false)
	if maxOK {
		r.MaxBackoff = maxB
	}
	if (initialOK || maxOK) && r.MaxBackoff < r.InitialBackoff {
		subject := maxAttr
		if !maxOK {
			subject = initialAttr
		}
		d.errorf(subject.Expr.Range(), "Invalid backoff",
			"restart.max_backoff (%s) is shorter than restart.initial_backoff (%s). Make max_backoff at least as long as initial_backoff.",
			r.MaxBackoff, r.InitialBackoff)
	}
	if f, a, ok := d.float(attrs, "multiplier", "restart.multiplier"); ok {
		if f < 1 {
			d.errorf(a.Expr.Range(), "Invalid multiplier",
				"restart.multiplier must be at least 1, so the backoff never shrinks, but it is %s.", d.show("restart.multiplier", strconv.FormatFloat(f, 'f', -1, 64)))
		} else {
			r.Multiplier = f
		}
	}
	if f, a, ok := d.float(attrs, "jitter", "restart.jitter"); ok {
		if f < 0 || f > 1 {
			d.errorf(a.Expr.Range(), "Invalid jitter",
				"restart.jitter must be between 0 and 1 (a fraction of each delay), but it is %s.", d.show("restart.jitter", strconv.FormatFloat(f, 'f', -1, 64)))
		} else {
			r.Jitter = f
		}
	}
	if v, _, ok := d.duration(attrs, "reset_after", "restart.reset_after", false); ok {
		r.ResetAfter = v
	}
	if n, a, ok := d.int(attrs, "max_failures", "restart.max_failures"); ok {
		if n < 1 {
			d.errorf(a.Expr.Range(), "Invalid failure count",
				"restart.max_failures must be at least 1, but it is %s: it is how many failures in a row open the circuit breaker.", d.show("restart.max_failures", strconv.Itoa(n)))
		} else {
			r.MaxFailures = n
		}
	}
	if v, _, ok := d.duration(attrs, "cooldown", "restart.cooldown", false); ok {
		r.Cooldown = v
	}
}

// value evaluates a (nil: absent), converts it to ty and records its range
// and sensitivity under path. ok is false when the attribute is absent,
// null, unknown after an earlier error, or wrong, which it reports.
func (d *poolDecoder) value(a *hcl.Attribute, path string, ty cty.Type) (cty.Value, *hcl.Attribute, bool) {
	if a == nil {
		return cty.NilVal, nil, false
	}
	d.p.AttrRanges[path] = a.Expr.Range()
	val, diags := d.l.eval(a.Expr, d.ctx, d.sc)
	d.diags = append(d.diags, diags...)
	if !diags.HasErrors() && !val.IsWhollyKnown() {
		d.p.Incomplete = true
	}
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return cty.NilVal, a, false
	}
	conv, err := convert.Convert(val, ty)
	if err != nil {
		d.errorf(a.Expr.Range(), "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", a.Name, err)
		return cty.NilVal, a, false
	}
	if conv.IsNull() {
		return cty.NilVal, a, false // null means unset, as in Terraform
	}
	d.recordSensitive(path, conv)
	return unmarked(conv), a, true
}

// recordSensitive notes which parts of v came from sensitive variables:
// the whole attribute, or single keys of a map.
func (d *poolDecoder) recordSensitive(path string, v cty.Value) {
	if !v.ContainsMarked() {
		return
	}
	if !v.IsMarked() && v.Type().IsMapType() {
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			if ev.ContainsMarked() {
				d.sensitive[path+"."+k.AsString()] = true
			}
		}
		return
	}
	d.sensitive[path] = true
}

// quote is s in quotes, or a placeholder when path holds a sensitive
// value: diagnostics are printed, and secrets must not be.
func (d *poolDecoder) quote(path, s string) string {
	if d.sensitive[path] {
		return "(sensitive value)"
	}
	return strconv.Quote(s)
}

// show is s, or a placeholder when path holds a sensitive value.
func (d *poolDecoder) show(path, s string) string {
	if d.sensitive[path] {
		return "(sensitive value)"
	}
	return s
}

func (d *poolDecoder) string(attrs hcl.Attributes, name, path string) (string, *hcl.Attribute, bool) {
	v, a, ok := d.value(attrs[name], path, cty.String)
	if !ok {
		return "", a, false
	}
	return v.AsString(), a, true
}

func (d *poolDecoder) int(attrs hcl.Attributes, name, path string) (int, *hcl.Attribute, bool) {
	v, a, ok := d.value(attrs[name], path, cty.Number)
	if !ok {
		return 0, a, false
	}
	n, whole := wholeInt(v)
	if !whole {
		d.errorf(a.Expr.Range(), "Invalid number", "%s must be a whole number, but it is %s.", path, d.show(path, formatNumber(v)))
		return 0, a, false
	}
	return n, a, true
}

func (d *poolDecoder) float(attrs hcl.Attributes, name, path string) (float64, *hcl.Attribute, bool) {
	v, a, ok := d.value(attrs[name], path, cty.Number)
	if !ok {
		return 0, a, false
	}
	f, _ := v.AsBigFloat().Float64()
	return f, a, true
}

// duration reads a duration string. positive forbids zero, for intervals
// where zero would mean polling in a tight loop.
func (d *poolDecoder) duration(attrs hcl.Attributes, name, path string, positive bool) (time.Duration, *hcl.Attribute, bool) {
	s, a, ok := d.string(attrs, name, path)
	if !ok {
		return 0, a, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.errorf(a.Expr.Range(), "Invalid duration",
			`%s is not a duration; use a number and a unit, like "30s" or "5m".`, d.quote(path, s))
	case v < 0:
		d.errorf(a.Expr.Range(), "Invalid duration",
			`%s is negative; %s must be 0 or more, like "0s" or "30s".`, d.quote(path, s), path)
	case v == 0 && positive:
		d.errorf(a.Expr.Range(), "Invalid duration",
			`%s must be more than zero, like "100ms" or "5s".`, path)
	default:
		return v, a, true
	}
	return 0, a, false
}

// enum reports whether s is one of allowed, with a suggestion when not.
func (d *poolDecoder) enum(a *hcl.Attribute, path, s, summary, what string, allowed []string) bool {
	if slices.Contains(allowed, s) {
		return true
	}
	suggestion := ""
	if !d.sensitive[path] {
		if near := didyoumean.NameSuggestion(s, allowed); near != "" {
			suggestion = fmt.Sprintf(" Did you mean %q?", near)
		}
	}
	d.errorf(a.Expr.Range(), summary, "%s is not %s.%s Use %s.", d.quote(path, s), what, suggestion, orList(allowed, "or"))
	return false
}

func (l *loader) checkPoolIDs() {
	byID := map[string]*Pool{}
	for _, p := range l.cfg.Pools {
		prev, ok := byID[p.ID]
		if !ok {
			byID[p.ID] = p
			continue
		}
		l.errorf(p.DeclRange.Ptr(), "Duplicate pool ID",
			"%s and %s both get the file-safe ID %q, which names their run directories and handoff files. Rename a pool or change a for_each key so the IDs differ.",
			prev.Addr, p.Addr, p.ID)
	}
}

// portClaim is the port range one pool instance's replicas listen on.
type portClaim struct {
	p      *Pool
	lo, hi int
}

// checkPorts reports fixed port ranges that overlap on the same host; a
// wildcard host (0.0.0.0, ::) overlaps every host. A sweep over the ranges
// sorted by start keeps this near-linear for many pools.
func (l *loader) checkPorts() {
	var claims []portClaim
	for _, p := range l.cfg.Pools {
		if p.Port > 0 {
			claims = append(claims, portClaim{p: p, lo: p.Port, hi: p.Port + p.Replicas - 1})
		}
	}
	sort.SliceStable(claims, func(i, j int) bool { return claims[i].lo < claims[j].lo })
	var active []portClaim
	for _, c := range claims {
		active = slices.DeleteFunc(active, func(a portClaim) bool { return a.hi < c.lo })
		for _, a := range active {
			if !hostsOverlap(a.p.Host, c.p.Host) {
				continue
			}
			port := max(a.lo, c.lo)
			l.errorf(c.p.Range("port").Ptr(), "Port conflict",
				"%s/r%d would listen on %s, which %s/r%d (%s) also claims. Give each pool its own ports, or leave port out to pick free ports at apply time.",
				c.p.Addr, port-c.lo, net.JoinHostPort(c.p.Host, strconv.Itoa(port)), a.p.Addr, port-a.lo, l.pos(a.p.Range("port")))
		}
		active = append(active, c)
	}
}

// poolAddr is the Terraform-style address of a pool instance.
func poolAddr(name string, key cty.Value) string {
	switch {
	case key == cty.NilVal:
		return "pool." + name
	case key.Type() == cty.Number:
		return fmt.Sprintf("pool.%s[%s]", name, key.AsBigFloat().Text('f', -1))
	default:
		return fmt.Sprintf("pool.%s[%s]", name, QuoteKey(key.AsString()))
	}
}

// maxIDLen bounds a pool's file-safe ID, so its run directories and handoff
// files (the ID plus "-r12.3" or "-r12.json") stay well inside a file
// name's 255 bytes.
const maxIDLen = 64

// poolID is the file-safe ID: the name, then "-" and the key, with every
// character outside [A-Za-z0-9_.-] replaced by "-". An ID longer than
// maxIDLen keeps its first characters and ends in "-" and a hash of the
// whole address, so it stays bounded and distinct.
func poolID(name string, key cty.Value) string {
	id := sanitizedID(name, key)
	if len(id) <= maxIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(poolAddr(name, key)))
	h := hex.EncodeToString(sum[:6])
	return id[:maxIDLen-len(h)-1] + "-" + h
}

func sanitizedID(name string, key cty.Value) string {
	id := name
	switch {
	case key == cty.NilVal:
	case key.Type() == cty.Number:
		id += "-" + key.AsBigFloat().Text('f', -1)
	default:
		id += "-" + key.AsString()
	}
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '.' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, id)
}

// QuoteKey quotes a for_each key as an HCL string literal, as Terraform
// prints instance keys: `"a\"b"`, with template sequences escaped. It is
// the one quoting of pool addresses; plan.ParseAddr reads it back.
func QuoteKey(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '$', '%':
			b.WriteRune(r)
			if i+1 < len(s) && s[i+1] == '{' {
				b.WriteRune(r)
			}
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// checkModelRef says what is wrong with a model reference, or "".
func checkModelRef(ref string) string {
	const how = `Use "file:/path/to/model.gguf", "hf:org/repo/model.gguf" (optionally followed by @revision) or an https:// URL.`
	switch {
	case strings.HasPrefix(ref, "file:"):
		if strings.TrimPrefix(ref, "file:") == "" {
			return "names no file. " + how
		}
	case strings.HasPrefix(ref, "hf:"):
		rest, _, _ := strings.Cut(strings.TrimPrefix(ref, "hf:"), "@")
		parts := strings.Split(rest, "/")
		// org/repo at least; whether a file must follow is the provider's
		// call (llamacpp loads one GGUF file, vLLM a whole repository).
		if len(parts) < 2 || slices.Contains(parts, "") {
			return "is not a Hugging Face reference: write it as hf:org/repo/path/to/model.gguf (or hf:org/repo for engines that load a whole repository), optionally followed by @revision."
		}
	case strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://"):
		rest := ref[strings.Index(ref, "://")+3:]
		if rest == "" || strings.HasPrefix(rest, "/") {
			return "has no host name. " + how
		}
	default:
		return "is not a model reference. " + how
	}
	return ""
}

func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	if strings.Contains(s, ":") {
		return isIP(s)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')) {
				return false
			}
		}
	}
	return true
}

func isHex(s string) bool {
	for _, r := range s {
		if !((r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F')) {
			return false
		}
	}
	return true
}

// wholeInt returns v as an int when it is a whole number that fits.
func wholeInt(v cty.Value) (int, bool) {
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, false
	}
	n, acc := bf.Int64()
	if acc != big.Exact || int64(int(n)) != n {
		return 0, false
	}
	return int(n), true
}

func formatNumber(v cty.Value) string {
	return v.AsBigFloat().Text('f', -1)
}

func stringSlice(v cty.Value) []string {
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		out = append(out, ev.AsString())
	}
	return out
}

func stringMap(v cty.Value) map[string]string {
	out := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		out[k.AsString()] = ev.AsString()
	}
	return out
}

// orList joins quoted names as prose: `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
func orList(names []string, conj string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}

// appendUnique appends the diagnostics of add that diags does not hold yet.
func appendUnique(diags, add hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range add {
		if !slices.ContainsFunc(diags, func(e *hcl.Diagnostic) bool { return sameDiag(d, e) }) {
			diags = append(diags, d)
		}
	}
	return diags
}

func sameDiag(a, b *hcl.Diagnostic) bool {
	if a.Severity != b.Severity || a.Summary != b.Summary || a.Detail != b.Detail {
		return false
	}
	if (a.Subject == nil) != (b.Subject == nil) {
		return false
	}
	return a.Subject == nil || *a.Subject == *b.Subject
}

// hostsOverlap reports whether engines listening on hosts a and b would
// compete for the same ports: the same address, or a wildcard on either
// side.
func hostsOverlap(a, b string) bool {
	ia, errA := netip.ParseAddr(a)
	ib, errB := netip.ParseAddr(b)
	if (errA == nil && ia.IsUnspecified()) || (errB == nil && ib.IsUnspecified()) {
		return true
	}
	if errA == nil && errB == nil {
		return ia.Unmap() == ib.Unmap()
	}
	return strings.EqualFold(a, b)
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// unmarked is v without any marks, at any depth.
func unmarked(v cty.Value) cty.Value {
	v, _ = v.UnmarkDeep()
	return v
}
