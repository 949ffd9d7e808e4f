package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// builtSpec is a pool's normalized spec and what redaction learned on the
// way.
type builtSpec struct {
	spec      *state.Spec
	hash      string
	sensitive []string // flattened attribute paths shown as (sensitive value)
	secrets   []string // the raw values that were hashed, to scrub provider messages
}

// buildSpec normalizes pool p and its decoded, unmarked provider block value
// into the Spec state records. marked are the paths of prov that carried
// marks (values from sensitive variables); schema is the provider's pool
// block schema.
func buildSpec(p *config.Pool, prov cty.Value, marked []cty.PathValueMarks, schema *blockSchema) (builtSpec, error) {
	raw, sens, secrets, err := redactProvider(prov, marked, schema)
	if err != nil {
		return builtSpec{}, fmt.Errorf("encoding the %s block of %s: %w", p.Engine, p.Addr, err)
	}
	return buildSpecWith(p, raw, sens, secrets)
}

// buildSpecWith is buildSpec with the provider block already recorded by
// redactProvider: raw, its sensitive paths, and the secrets it hashed.
func buildSpecWith(p *config.Pool, raw json.RawMessage, sens, secrets []string) (builtSpec, error) {
	s := &state.Spec{
		Engine:   p.Engine,
		Replicas: p.Replicas,
		Model:    state.ModelSpec{Ref: p.Model.Ref, SHA256: p.Model.SHA256},
		Host:     p.Host,
		Port:     p.Port,
		Ctx:      p.Ctx,
		Health: state.HealthSpec{
			Path:         p.Health.Path,
			Interval:     durationString(p.Health.Interval),
			StartTimeout: durationString(p.Health.StartTimeout),
			LiveInterval: durationString(p.Health.LiveInterval),
			Failures:     p.Health.Failures,
			Smoke:        smokeSpec(p.Health.Smoke),
		},
		Restart: state.RestartSpec{
			Policy:         p.Restart.Policy,
			InitialBackoff: durationString(p.Restart.InitialBackoff),
			MaxBackoff:     durationString(p.Restart.MaxBackoff),
			Multiplier:     p.Restart.Multiplier,
			Jitter:         p.Restart.Jitter,
			ResetAfter:     durationString(p.Restart.ResetAfter),
			MaxFailures:    p.Restart.MaxFailures,
			Cooldown:       durationString(p.Restart.Cooldown),
		},
		Drain:  state.DrainSpec{Deadline: durationString(p.Drain.Deadline), KillTimeout: durationString(p.Drain.KillTimeout)},
		Update: state.UpdateSpec{Strategy: p.Update.Strategy},
	}
	// nil and empty mean the same for these, so they are recorded the same;
	// devices is the exception: [] (CPU only) is not "unset".
	if p.Devices != nil {
		s.Devices = slices.Clone(p.Devices)
	}
	if len(p.Flags) > 0 {
		s.Flags = slices.Clone(p.Flags)
	}
	if len(p.Env) > 0 {
		s.Env = maps.Clone(p.Env)
	}
	if len(p.Labels) > 0 {
		s.Labels = maps.Clone(p.Labels)
	}

	var out builtSpec
	out.sensitive, out.secrets = redactPoolAttrs(s, p.SensitivePaths)

	s.Provider = raw
	for _, leaf := range sens {
		out.sensitive = append(out.sensitive, p.Engine+"."+leaf)
	}
	out.secrets = append(out.secrets, secrets...)
	sort.Strings(out.sensitive)
	out.sensitive = slices.Compact(out.sensitive)

	out.spec = s
	var err error
	if out.hash, err = SpecHash(s); err != nil {
		return out, err
	}
	return out, nil
}

// SpecHash returns "sha256:" and the hex digest of s's canonical JSON, the
// value state records as spec_hash.
func SpecHash(s *state.Spec) (string, error) {
	var buf [1024]byte
	b, err := s.AppendJSON(buf[:0])
	if err != nil {
		return "", fmt.Errorf("encoding spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// durationString formats d as state records durations ("100ms", "2m0s").
func durationString(d time.Duration) string { return d.String() }

// hashJSON is how a sensitive value is recorded: "sha256:" and the hex
// digest of the value's JSON.
func hashJSON(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func hashString(v string) string {
	b, _ := json.Marshal(v) // a string always encodes
	return hashJSON(b)
}

// IsRedacted reports whether v looks like a value Spec holds in place of a
// sensitive one ("sha256:" and 64 hex digits).
func IsRedacted(v any) bool {
	s, ok := v.(string)
	if !ok || len(s) != len("sha256:")+64 || !strings.HasPrefix(s, "sha256:") {
		return false
	}
	for _, c := range s[len("sha256:"):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// poolStringLeaves returns the string attributes of s by flattened path, so
// that a sensitive path can be hashed in place.
func poolStringLeaves(s *state.Spec) map[string]*string {
	return map[string]*string{
		"engine":                  &s.Engine,
		"model.ref":               &s.Model.Ref,
		"model.sha256":            &s.Model.SHA256,
		"host":                    &s.Host,
		"health.path":             &s.Health.Path,
		"health.interval":         &s.Health.Interval,
		"health.start_timeout":    &s.Health.StartTimeout,
		"health.live_interval":    &s.Health.LiveInterval,
		"restart.policy":          &s.Restart.Policy,
		"restart.initial_backoff": &s.Restart.InitialBackoff,
		"restart.max_backoff":     &s.Restart.MaxBackoff,
		"restart.reset_after":     &s.Restart.ResetAfter,
		"restart.cooldown":        &s.Restart.Cooldown,
		"drain.deadline":          &s.Drain.Deadline,
		"drain.kill_timeout":      &s.Drain.KillTimeout,
		"update.strategy":         &s.Update.Strategy,
	}
}

// poolNumberLeaves are the attributes that are not strings: a value from a
// sensitive variable there is shown as (sensitive value) but kept, since a
// number cannot hold a hash and is not a credential.
var poolNumberLeaves = []string{
	"replicas", "port", "devices", "ctx",
	"health.failures", "restart.multiplier", "restart.jitter", "restart.max_failures",
}

// redactPoolAttrs hashes, in s, the pool attributes at paths (as config
// reports them: "env.HF_TOKEN", `env["HF_TOKEN"]`, "flags", "flags[1]",
// "model.ref", "health") and returns the flattened paths to show as
// sensitive and the raw values it hashed.
func redactPoolAttrs(s *state.Spec, paths []string) (sensitive, secrets []string) {
	if len(paths) == 0 {
		return nil, nil
	}
	strs := poolStringLeaves(s)
	hashAt := func(leaf string, p *string) {
		if *p == "" {
			return // nothing to hide
		}
		sensitive = append(sensitive, leaf)
		if !IsRedacted(*p) {
			secrets = append(secrets, *p)
			*p = hashString(*p)
		}
	}
	for _, raw := range paths {
		path, key, hasKey := splitSensitivePath(raw)
		switch path {
		case "env", "labels":
			m := s.Env
			if path == "labels" {
				m = s.Labels
			}
			for _, k := range providers.SortedKeys(m) {
				if hasKey && k != key {
					continue
				}
				v := m[k]
				hashAt(path+"."+k, &v)
				m[k] = v
			}
			continue
		case "flags":
			idx, err := strconv.Atoi(key)
			for i := range s.Flags {
				if hasKey && (err != nil || i != idx) {
					continue
				}
				hashAt("flags", &s.Flags[i])
			}
			continue
		}
		for _, leaf := range providers.SortedKeys(strs) {
			if leaf == path || strings.HasPrefix(leaf, path+".") {
				hashAt(leaf, strs[leaf])
			}
		}
		for _, leaf := range poolNumberLeaves {
			if leaf == path || strings.HasPrefix(leaf, path+".") {
				sensitive = append(sensitive, leaf)
			}
		}
	}
	return sensitive, secrets
}

// splitSensitivePath splits "env.K", `env["K"]` and "flags[1]" into the
// attribute and the key or index within it.
func splitSensitivePath(p string) (path, key string, hasKey bool) {
	if i := strings.IndexByte(p, '['); i > 0 && strings.HasSuffix(p, "]") {
		k := p[i+1 : len(p)-1]
		if u, err := strconv.Unquote(k); err == nil {
			k = u
		}
		return p[:i], k, true
	}
	for _, m := range []string{"env.", "labels.", "flags."} {
		if k, ok := strings.CutPrefix(p, m); ok {
			return strings.TrimSuffix(m, "."), k, true
		}
	}
	return p, "", false
}

// redacted marks a node of a decoded provider value that already holds a
// hash, so that a path both marked and declared sensitive is hashed once.
type redacted string

// blockSchema is a provider block schema with what decoding and redaction
// derive from it, computed once per provider rather than once per pool.
type blockSchema struct {
	block     *providers.Block
	spec      hcldec.Spec
	sensitive []cty.Path

	absentOnce  sync.Once
	absentBlock *absentBlock
}

// absentBlock is what a pool without the pool-level provider block
// records: the same for every such pool, so decoded and encoded once.
type absentBlock struct {
	val cty.Value
	raw json.RawMessage
}

// absent returns what a pool without the block records, or nil when an
// empty block does not decode cleanly (a required attribute): each pool
// then decodes its own, to report the error at itself.
func (s *blockSchema) absent() *absentBlock {
	s.absentOnce.Do(func() {
		val, diags := hcldec.Decode(&hclsyntax.Body{}, s.spec, nil)
		if len(diags) > 0 || val.ContainsMarked() {
			return
		}
		raw, sens, secrets, err := redactProvider(val, nil, s)
		if err != nil || len(sens) > 0 || len(secrets) > 0 {
			return
		}
		s.absentBlock = &absentBlock{val: val, raw: raw}
	})
	return s.absentBlock
}

func newBlockSchema(b *providers.Block) *blockSchema {
	return &blockSchema{block: b, spec: b.DecoderSpec(), sensitive: b.SensitivePaths()}
}

// redactProvider turns the pool-level provider block value into the JSON
// Spec.Provider records, every sensitive attribute (schema Sensitive, or
// marked because it came from a sensitive variable) replaced by its hash.
// It returns the flattened sensitive paths relative to the block and the
// raw string values it hashed.
func redactProvider(v cty.Value, marked []cty.PathValueMarks, schema *blockSchema) (json.RawMessage, []string, []string, error) {
	if v == cty.NilVal || v.IsNull() {
		return nil, nil, nil, nil
	}
	if !v.IsWhollyKnown() {
		return nil, nil, nil, fmt.Errorf("the value is not known until apply")
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil, nil, nil, err
	}
	if !needsRedaction(v, marked, schema.sensitive) {
		// Nothing to hash, as in most pools: cty's JSON is already what
		// re-encoding the tree below gives, compact, with object and map
		// keys sorted and numbers as written.
		if string(b) == "{}" {
			return nil, nil, nil, nil
		}
		return b, nil, nil, nil
	}
	return redactJSON(b, marked, schema)
}

// needsRedaction reports whether v may hold a value to hash: a marked one,
// or a non-null one at a sensitive path. It answers true when unsure.
func needsRedaction(v cty.Value, marked []cty.PathValueMarks, sensitive []cty.Path) bool {
	for _, pm := range marked {
		if len(pm.Marks) > 0 {
			return true
		}
	}
	for _, p := range sensitive {
		if mayHoldValue(v, pathNames(p)) {
			return true
		}
	}
	return false
}

// mayHoldValue reports whether a non-null value may be at the attribute
// names path of v, through nested blocks (objects, and lists of them) as
// redactNames follows it.
func mayHoldValue(v cty.Value, names []string) bool {
	if v.IsNull() {
		return false
	}
	if len(names) == 0 {
		return true
	}
	ty := v.Type()
	switch {
	case ty.IsObjectType():
		return ty.HasAttribute(names[0]) && mayHoldValue(v.GetAttr(names[0]), names[1:])
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		for it := v.ElementIterator(); it.Next(); {
			if _, e := it.Element(); mayHoldValue(e, names) {
				return true
			}
		}
		return false
	default:
		return true // a map's keys may match names: let redactJSON look
	}
}

// redactJSON is redactProvider's work on the value's JSON when something
// may need hashing.
func redactJSON(b []byte, marked []cty.PathValueMarks, schema *blockSchema) (json.RawMessage, []string, []string, error) {
	tree, err := decodeJSONTree(b)
	if err != nil {
		return nil, nil, nil, err
	}
	var sensitive, secrets []string
	for _, p := range schema.sensitive {
		names := pathNames(p)
		n := len(secrets)
		var hit bool
		tree = redactNames(tree, names, &redaction{secrets: &secrets, hit: &hit})
		if hit || len(secrets) > n {
			sensitive = append(sensitive, providerLeaf(schema.block, names))
		}
	}
	for _, pm := range marked {
		if len(pm.Marks) == 0 {
			continue
		}
		var hit bool
		tree = redactPath(tree, pm.Path, &redaction{secrets: &secrets, hit: &hit})
		if names := pathNames(pm.Path); hit && len(names) > 0 {
			sensitive = append(sensitive, providerLeaf(schema.block, names))
		}
	}
	if m, ok := tree.(map[string]any); ok && len(m) == 0 {
		return nil, sensitive, secrets, nil
	}
	out, err := json.Marshal(tree)
	if err != nil {
		return nil, nil, nil, err
	}
	return out, sensitive, secrets, nil
}

func decodeJSONTree(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // keep numbers exactly as cty wrote them
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// redaction collects what hashing found: the raw strings, and whether any
// non-null value was there at all.
type redaction struct {
	secrets *[]string
	hit     *bool
}

// redactNames hashes the node at the attribute names path, descending into
// every element of a list of nested blocks.
func redactNames(node any, names []string, secrets *redaction) any {
	if len(names) == 0 {
		return redactNode(node, secrets)
	}
	switch n := node.(type) {
	case map[string]any:
		if child, ok := n[names[0]]; ok {
			n[names[0]] = redactNames(child, names[1:], secrets)
		}
	case []any:
		for i := range n {
			n[i] = redactNames(n[i], names, secrets)
		}
	}
	return node
}

// redactPath hashes the node at an exact cty path (marks are recorded with
// list indexes and map keys).
func redactPath(node any, path cty.Path, secrets *redaction) any {
	if len(path) == 0 {
		return redactNode(node, secrets)
	}
	switch step := path[0].(type) {
	case cty.GetAttrStep:
		if m, ok := node.(map[string]any); ok {
			if child, ok := m[step.Name]; ok {
				m[step.Name] = redactPath(child, path[1:], secrets)
			}
		}
		return node
	case cty.IndexStep:
		switch {
		case step.Key.Type() == cty.String:
			if m, ok := node.(map[string]any); ok {
				k := step.Key.AsString()
				if child, ok := m[k]; ok {
					m[k] = redactPath(child, path[1:], secrets)
				}
				return node
			}
		case step.Key.Type() == cty.Number:
			if l, ok := node.([]any); ok {
				i, acc := step.Key.AsBigFloat().Int64()
				if acc == 0 && i >= 0 && int(i) < len(l) {
					l[i] = redactPath(l[i], path[1:], secrets)
				}
				return node
			}
		}
	}
	// A step we cannot follow (into a set): hash the whole value rather
	// than risk leaving the secret in place.
	return redactNode(node, secrets)
}

func redactNode(node any, r *redaction) any {
	if node == nil {
		return nil
	}
	*r.hit = true
	if _, done := node.(redacted); done {
		return node
	}
	collectStrings(node, r.secrets)
	b, err := json.Marshal(node)
	if err != nil {
		return redacted(hashString(fmt.Sprint(node)))
	}
	return redacted(hashJSON(b))
}

func collectStrings(node any, out *[]string) {
	switch n := node.(type) {
	case string:
		if n != "" {
			*out = append(*out, n)
		}
	case map[string]any:
		for _, v := range n {
			collectStrings(v, out)
		}
	case []any:
		for _, v := range n {
			collectStrings(v, out)
		}
	}
}

// pathNames returns the attribute names along p, skipping indexes.
func pathNames(p cty.Path) []string {
	var names []string
	for _, step := range p {
		if ga, ok := step.(cty.GetAttrStep); ok {
			names = append(names, ga.Name)
		}
	}
	return names
}

// providerLeaf returns the flattened path (relative to the provider block)
// of the attribute that contains names: attributes and lists of blocks are
// leaves, single nested blocks are descended into.
func providerLeaf(schema *providers.Block, names []string) string {
	b := schema
	for i, n := range names {
		if b == nil {
			return strings.Join(names[:i+1], ".")
		}
		if _, ok := b.Attributes[n]; ok {
			return strings.Join(names[:i+1], ".")
		}
		nb, ok := b.Blocks[n]
		if !ok || nb.Nesting != providers.NestingSingle {
			return strings.Join(names[:i+1], ".")
		}
		b = &nb.Block
	}
	return strings.Join(names, ".")
}

// attrVal is one flattened attribute of a Spec. Values are nil (absent),
// string, int, float64, []int, []string or json.RawMessage (provider
// attributes, compact JSON).
type attrVal struct {
	path string
	val  any
}

// flattenSpec lists s's attributes in display order, with dotted paths:
// "model.ref", "env.FOO", "health.interval", "<engine>.n_gpu_layers".
// schema (nil when unknown) tells single nested provider blocks from
// object-typed attributes.
func flattenSpec(s *state.Spec, schema *providers.Block) []attrVal {
	if s == nil {
		return nil
	}
	out := make([]attrVal, 0, 24+len(s.Env)+len(s.Labels))
	add := func(path string, v any) { out = append(out, attrVal{path, v}) }
	add("engine", nonEmpty(s.Engine))
	add("replicas", s.Replicas)
	add("model.ref", nonEmpty(s.Model.Ref))
	add("model.sha256", nonEmpty(s.Model.SHA256))
	add("host", nonEmpty(s.Host))
	add("port", nonZero(s.Port))
	if s.Devices != nil {
		add("devices", s.Devices)
	} else {
		add("devices", nil)
	}
	add("ctx", nonZero(s.Ctx))
	if len(s.Flags) > 0 {
		add("flags", s.Flags)
	} else {
		add("flags", nil)
	}
	for _, k := range providers.SortedKeys(s.Env) {
		add("env."+k, s.Env[k])
	}
	for _, k := range providers.SortedKeys(s.Labels) {
		add("labels."+k, s.Labels[k])
	}
	add("health.path", nonEmpty(s.Health.Path))
	add("health.interval", nonEmpty(s.Health.Interval))
	add("health.start_timeout", nonEmpty(s.Health.StartTimeout))
	add("health.live_interval", nonEmpty(s.Health.LiveInterval))
	add("health.failures", s.Health.Failures)
	add("restart.policy", nonEmpty(s.Restart.Policy))
	add("restart.initial_backoff", nonEmpty(s.Restart.InitialBackoff))
	add("restart.max_backoff", nonEmpty(s.Restart.MaxBackoff))
	add("restart.multiplier", s.Restart.Multiplier)
	add("restart.jitter", s.Restart.Jitter)
	add("restart.reset_after", nonEmpty(s.Restart.ResetAfter))
	add("restart.max_failures", s.Restart.MaxFailures)
	add("restart.cooldown", nonEmpty(s.Restart.Cooldown))
	add("drain.deadline", nonEmpty(s.Drain.Deadline))
	add("drain.kill_timeout", nonEmpty(s.Drain.KillTimeout))
	add("update.strategy", nonEmpty(s.Update.Strategy))
	if len(s.Provider) > 0 {
		out = flattenProvider(out, s.Engine, s.Provider, schema)
	}
	return out
}

func flattenProvider(out []attrVal, prefix string, raw json.RawMessage, schema *providers.Block) []attrVal {
	members, ok := objectMembers(raw)
	if !ok {
		// Not an object (a hand-edited state): compare it whole.
		return append(out, attrVal{prefix, compactJSON(raw)})
	}
	for _, mem := range members {
		k, v := mem.key, mem.value
		path := prefix + "." + k
		if schema != nil {
			if nb, ok := schema.Blocks[k]; ok && nb.Nesting == providers.NestingSingle {
				if isJSONNull(v) {
					continue // block absent
				}
				out = flattenProvider(out, path, v, &nb.Block)
				continue
			}
		}
		if isJSONNull(v) {
			out = append(out, attrVal{path, nil})
			continue
		}
		out = append(out, attrVal{path, compactJSON(v)})
	}
	return out
}

// member is one key and raw value of a JSON object.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers splits a JSON object into its members, sorted by key. It
// is a fast path for the objects llorch itself writes (flattening runs for
// every pool of every plan); anything unusual goes through encoding/json.
// raw must be valid JSON, as every json.RawMessage encoding/json decoded or
// produced is: this splits, it does not validate.
func objectMembers(raw json.RawMessage) ([]member, bool) {
	b := bytes.TrimSpace(raw)
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, false
	}
	var out []member
	i := skipSpace(b, 1)
	if i == len(b)-1 {
		return out, true // {}
	}
	for i < len(b)-1 {
		if b[i] != '"' {
			return slowMembers(raw)
		}
		end := stringEnd(b, i)
		if end < 0 {
			return slowMembers(raw)
		}
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			return slowMembers(raw) // let encoding/json unquote (and repair) it
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return slowMembers(raw)
		}
		start := skipSpace(b, i+1)
		stop := valueEnd(b, start)
		if stop < 0 {
			return slowMembers(raw)
		}
		out = append(out, member{string(key), json.RawMessage(bytes.TrimSpace(b[start:stop]))})
		i = skipSpace(b, stop)
		switch {
		case i < len(b)-1 && b[i] == ',':
			i = skipSpace(b, i+1)
		case i == len(b)-1:
		default:
			return slowMembers(raw)
		}
	}
	byKey := func(a, b member) int { return strings.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(out, byKey) {
		slices.SortStableFunc(out, byKey)
	}
	for i := 1; i < len(out); i++ {
		if out[i].key == out[i-1].key {
			return slowMembers(raw) // a key twice: the last one wins, as in encoding/json
		}
	}
	return out, true
}

func slowMembers(raw json.RawMessage) ([]member, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, false
	}
	out := make([]member, 0, len(m))
	for _, k := range providers.SortedKeys(m) {
		out = append(out, member{k, m[k]})
	}
	return out, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] ('"').
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the JSON value starting at b[i]:
// a string, or anything up to the ',' or '}' that ends it at depth zero.
func valueEnd(b []byte, i int) int {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			end := stringEnd(b, j)
			if end < 0 {
				return -1
			}
			j = end - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j
			}
			depth--
		case ',':
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

func isJSONNull(b json.RawMessage) bool { return string(bytes.TrimSpace(b)) == "null" }

// compactJSON removes the whitespace an indented state file adds, so that
// provider values compare by bytes.
func compactJSON(b json.RawMessage) json.RawMessage {
	if !bytes.ContainsAny(b, " \t\r\n") {
		return b
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nonZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

// equalValue compares two flattened attribute values.
func equalValue(a, b any) bool {
	switch av := a.(type) {
	case nil:
		return b == nil
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case int:
		bv, ok := b.(int)
		return ok && av == bv
	case float64:
		bv, ok := b.(float64)
		return ok && av == bv
	case []int:
		bv, ok := b.([]int)
		return ok && slices.Equal(av, bv)
	case []string:
		bv, ok := b.([]string)
		return ok && slices.Equal(av, bv)
	case json.RawMessage:
		bv, ok := b.(json.RawMessage)
		return ok && bytes.Equal(av, bv)
	}
	return false
}

var defaultSettings = sync.OnceValue(func() map[string]any {
	p := &config.Pool{
		Health: config.DefaultHealth, Restart: config.DefaultRestart,
		Drain: config.DefaultDrain, Update: config.DefaultUpdate,
	}
	b, _ := buildSpec(p, cty.NilVal, nil, nil) // no provider value: cannot fail
	out := map[string]any{}
	for _, a := range flattenSpec(b.spec, nil) {
		switch strings.SplitN(a.path, ".", 2)[0] {
		case "health", "restart", "drain", "update":
			out[a.path] = a.val
		}
	}
	return out
})

// DefaultSettings returns the documented defaults of the health, restart,
// drain and update blocks by flattened path ("health.interval" → "100ms"),
// so output can leave out settings nobody changed.
func DefaultSettings() map[string]any { return maps.Clone(defaultSettings()) }

// PoolSpec is the provider-neutral pool a provider sees, with real values.
func PoolSpec(p *config.Pool) providers.PoolSpec {
	ps := providers.PoolSpec{
		Addr:     p.Addr,
		ID:       p.ID,
		Model:    providers.ModelRef{Ref: p.Model.Ref, SHA256: p.Model.SHA256},
		Host:     p.Host,
		Port:     p.Port,
		Ctx:      p.Ctx,
		Flags:    slices.Clone(p.Flags),
		Env:      maps.Clone(p.Env),
		Replicas: p.Replicas,
	}
	if p.Devices != nil {
		ps.Devices = slices.Clone(p.Devices)
	}
	return ps
}

// priorEngine is the engine last prepared for a pool, as PlanPool's Prior.
func priorEngine(id string, sp *state.Pool) *providers.PreparedEngine {
	if sp == nil || sp.Prepared == nil {
		return nil
	}
	pr := sp.Prepared
	return &providers.PreparedEngine{
		BinaryPath:       pr.BinaryPath,
		Args:             slices.Clone(pr.Args),
		Env:              maps.Clone(pr.Env),
		Host:             pr.Host,
		Port:             pr.Port,
		ModelPath:        pr.ModelPath,
		ModelSHA256:      pr.ModelSHA256,
		BinarySHA256:     pr.BinarySHA256,
		EngineVersion:    pr.EngineVersion,
		ProvisioningMode: pr.ProvisioningMode,
		PoolID:           id,
		DeviceMask:       pr.DeviceMask,
		HealthPath:       pr.HealthPath,
	}
}

// SpecAttr is one attribute of a Spec under its flattened path.
type SpecAttr struct {
	Path  string
	Value any // nil (absent), string, int, float64, []int, []string or json.RawMessage
}

// SpecAttrs lists s's attributes with the dotted paths AttrDiff uses
// ("model.ref", "env.FOO", "<engine>.n_gpu_layers"), in display order.
func SpecAttrs(s *state.Spec) []SpecAttr {
	vals := flattenSpec(s, nil)
	out := make([]SpecAttr, len(vals))
	for i, v := range vals {
		out[i] = SpecAttr{Path: v.path, Value: v.val}
	}
	return out
}

func smokeSpec(s *config.Smoke) *state.SmokeSpec {
	if s == nil {
		return nil
	}
	return &state.SmokeSpec{Prompt: s.Prompt, NPredict: s.NPredict, Expect: s.Expect, Timeout: durationString(s.Timeout)}
}
