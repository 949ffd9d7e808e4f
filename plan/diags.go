package plan

import (
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/providers"
)

// poolAttributeNames are the pool block's own attributes and blocks, to
// which a provider may point (cty.GetAttrPath("model").GetAttr("ref")).
var poolAttributeNames = map[string]bool{
	"engine": true, "replicas": true, "model": true, "host": true, "port": true,
	"devices": true, "ctx": true, "flags": true, "env": true, "labels": true,
	"health": true, "restart": true, "drain": true, "update": true,
}

// poolDiagnostics turns a provider's diagnostics about pool p into HCL
// diagnostics with a source range: a path into the pool-level provider
// block points at that attribute, a pool attribute path at the pool
// attribute, anything else at the pool block. Secret values a provider
// might echo are scrubbed.
func poolDiagnostics(ds providers.Diagnostics, p *config.Pool, schema *providers.Block, secrets []string) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range ds {
		rng := poolDiagRange(d.Attribute, p, schema)
		out = append(out, &hcl.Diagnostic{
			Severity: severity(d.Severity),
			Summary:  scrub(d.Summary, secrets),
			Detail:   scrub(d.Detail, secrets),
			Subject:  rng.Ptr(),
			Extra:    poolAddr(p.Addr),
		})
	}
	return out
}

// poolAddr is the Extra of a diagnostic about one pool, so that its text
// in Plan.Warnings can name the pool.
type poolAddr string

func poolDiagRange(path cty.Path, p *config.Pool, schema *providers.Block) hcl.Range {
	names := pathNames(path)
	if len(names) == 0 {
		return p.DeclRange
	}
	inBlock := false
	if schema != nil {
		_, isAttr := schema.Attributes[names[0]]
		_, isBlock := schema.Blocks[names[0]]
		inBlock = isAttr || isBlock
	}
	if !inBlock && poolAttributeNames[names[0]] {
		// The most specific range config recorded: "model.ref", then "model".
		dotted := poolPathString(path)
		for {
			if r, ok := p.AttrRanges[dotted]; ok {
				return r
			}
			i := strings.LastIndexByte(dotted, '.')
			if i < 0 {
				return p.DeclRange
			}
			dotted = dotted[:i]
		}
	}
	if r, ok := bodyPathRange(p.ProviderBody, path); ok {
		return r
	}
	// The attribute is not written in the block (a required one missing):
	// point at the block, or at the pool when there is no block.
	return p.Range(p.Engine)
}

// poolPathString renders a pool attribute path the way config.Pool's
// AttrRanges keys it: "model.ref", "env.FOO", "flags".
func poolPathString(path cty.Path) string {
	var b strings.Builder
	for _, step := range path {
		switch s := step.(type) {
		case cty.GetAttrStep:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				b.WriteByte('.')
				b.WriteString(s.Key.AsString())
			}
		}
	}
	return b.String()
}

// bodyPathRange finds the source range of the value at path inside an
// hclsyntax body: an attribute's expression (a tuple or object element when
// the path indexes into one), or a nested block's header.
func bodyPathRange(body hcl.Body, path cty.Path) (hcl.Range, bool) {
	sb, ok := body.(*hclsyntax.Body)
	if !ok || sb == nil || len(path) == 0 {
		return hcl.Range{}, false
	}
	ga, ok := path[0].(cty.GetAttrStep)
	if !ok {
		return hcl.Range{}, false
	}
	if attr, ok := sb.Attributes[ga.Name]; ok {
		return exprPathRange(attr.Expr, path[1:]), true
	}
	var blocks []*hclsyntax.Block
	for _, blk := range sb.Blocks {
		if blk.Type == ga.Name {
			blocks = append(blocks, blk)
		}
	}
	if len(blocks) == 0 {
		return hcl.Range{}, false
	}
	blk, rest := blocks[0], path[1:]
	if len(rest) > 0 {
		if idx, ok := rest[0].(cty.IndexStep); ok && idx.Key.Type() == cty.Number {
			// An element of a list of nested blocks.
			n, acc := idx.Key.AsBigFloat().Int64()
			if acc != 0 || n < 0 || int(n) >= len(blocks) {
				return blk.DefRange(), true
			}
			blk, rest = blocks[n], rest[1:]
		}
	}
	if len(rest) == 0 {
		return blk.DefRange(), true
	}
	if r, ok := bodyPathRange(blk.Body, rest); ok {
		return r, true
	}
	return blk.DefRange(), true
}

// exprPathRange narrows an attribute's expression range to the element at
// rest when the expression is a literal tuple or object.
func exprPathRange(expr hclsyntax.Expression, rest cty.Path) hcl.Range {
	if len(rest) == 0 {
		return expr.Range()
	}
	switch e := expr.(type) {
	case *hclsyntax.TupleConsExpr:
		if idx, ok := rest[0].(cty.IndexStep); ok && idx.Key.Type() == cty.Number {
			n, acc := idx.Key.AsBigFloat().Int64()
			if acc == 0 && n >= 0 && int(n) < len(e.Exprs) {
				return exprPathRange(e.Exprs[n], rest[1:])
			}
		}
	case *hclsyntax.ObjectConsExpr:
		var key string
		switch s := rest[0].(type) {
		case cty.GetAttrStep:
			key = s.Name
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				key = s.Key.AsString()
			}
		}
		for _, item := range e.Items {
			k, diags := item.KeyExpr.Value(nil)
			if diags.HasErrors() || k.Type() != cty.String || k.IsNull() {
				continue
			}
			if k.AsString() == key {
				return exprPathRange(item.ValueExpr, rest[1:])
			}
		}
	}
	return expr.Range()
}

func severity(s providers.Severity) hcl.DiagnosticSeverity {
	if s == providers.Warning {
		return hcl.DiagWarning
	}
	return hcl.DiagError
}

// scrub replaces every secret in s by "(sensitive value)", longest first
// so that a secret containing another is replaced whole. Very short values
// are left alone: they would mangle ordinary words and cannot be
// credentials worth the name.
func scrub(s string, secrets []string) string {
	if len(secrets) > 1 {
		secrets = slices.Clone(secrets)
		slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	}
	for _, sec := range secrets {
		if len(sec) >= 4 && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "(sensitive value)")
		}
	}
	return s
}

// sensitiveValues returns the string values of cfg's sensitive variables
// (each element of a collection), to scrub from what providers say.
func sensitiveValues(cfg *config.Config) []string {
	var out []string
	var walk func(v cty.Value)
	walk = func(v cty.Value) {
		v, _ = v.UnmarkDeep()
		switch {
		case v == cty.NilVal || v.IsNull() || !v.IsKnown():
		case v.Type() == cty.String:
			out = append(out, v.AsString())
		case v.CanIterateElements():
			for it := v.ElementIterator(); it.Next(); {
				_, ev := it.Element()
				walk(ev)
			}
		}
	}
	for _, name := range providers.SortedKeys(cfg.Variables) {
		if v := cfg.Variables[name]; v.Sensitive {
			walk(v.Value)
		}
	}
	return out
}

// warningText is how a warning diagnostic is kept in Plan.Warnings: the
// summary, where it is (as Terraform prints it), then the detail, separated
// by blank lines.
func warningText(d *hcl.Diagnostic) string {
	s := d.Summary
	if d.Subject != nil && d.Subject.Filename != "" {
		s += "\n\n  on " + d.Subject.Filename + " line " + strconv.Itoa(d.Subject.Start.Line)
		if addr, ok := d.Extra.(poolAddr); ok {
			s += ", in " + string(addr)
		}
	}
	if d.Detail != "" {
		s += "\n\n" + d.Detail
	}
	return s
}
