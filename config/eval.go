package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/internal/didyoumean"
)

// scope says which of the per-instance objects an expression may use.
type scope struct {
	each, count bool
}

// checkRefs reports references to undeclared variables and locals, and to
// each or count outside a pool that sets for_each or count. It runs before
// evaluation so these errors read better than HCL's generic "Unsupported
// attribute", and so the expression is not evaluated twice into the same
// error.
func (l *loader) checkRefs(expr hcl.Expression, sc scope) hcl.Diagnostics {
	if isLiteral(expr) {
		return nil // most attributes; walking them is a good part of Load's cost
	}
	var diags hcl.Diagnostics
	for _, t := range expr.Variables() {
		diags = append(diags, l.checkTraversal(t, sc)...)
	}
	return diags
}

func (l *loader) checkTraversal(t hcl.Traversal, sc scope) hcl.Diagnostics {
	rng := t.SourceRange().Ptr()
	diag := func(summary, format string, args ...any) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(format, args...), Subject: rng}}
	}
	switch root := t.RootName(); root {
	case "var", "local":
		name, ok := traversalName(t)
		if !ok {
			return diag("Invalid reference",
				"The %q object cannot be used on its own. Refer to one of its attributes, like %s.NAME.", root, root)
		}
		if root == "var" {
			if _, ok := l.vars[name]; !ok {
				return diag("Reference to undeclared input variable",
					"An input variable with the name %q has not been declared.%s Declare it with a variable %q {} block.",
					name, l.suggestVar(name), name)
			}
			return nil
		}
		if _, ok := l.localNames[name]; !ok {
			suggestion := ""
			if s := didyoumean.NameSuggestion(name, sortedKeys(l.localNames)); s != "" {
				suggestion = fmt.Sprintf(" Did you mean %q?", s)
			}
			return diag("Reference to undeclared local value",
				"A local value with the name %q has not been declared.%s Declare it in a locals {} block.", name, suggestion)
		}
	case "each":
		if !sc.each {
			return diag(`Reference to "each" in context without for_each`,
				`The "each" object can be used only in a pool block that sets for_each.`)
		}
	case "count":
		if !sc.count {
			return diag(`Reference to "count" in non-counted context`,
				`The "count" object can be used only in a pool block that sets count.`)
		}
	}
	return nil
}

// isLiteral reports whether expr is a constant: a literal, a template
// without interpolations, or a tuple or object of those. It may say false
// for some constants; it never says true for an expression with references.
func isLiteral(expr hcl.Expression) bool {
	switch e := expr.(type) {
	case *hclsyntax.LiteralValueExpr:
		return true
	case *hclsyntax.TemplateExpr:
		for _, p := range e.Parts {
			if _, ok := p.(*hclsyntax.LiteralValueExpr); !ok {
				return false
			}
		}
		return true
	case *hclsyntax.TupleConsExpr:
		for _, x := range e.Exprs {
			if !isLiteral(x) {
				return false
			}
		}
		return true
	case *hclsyntax.ObjectConsExpr:
		for _, item := range e.Items {
			if !isLiteral(item.KeyExpr) || !isLiteral(item.ValueExpr) {
				return false
			}
		}
		return true
	case *hclsyntax.ObjectConsKeyExpr:
		// A bare key like { team = "x" } is a name, not a reference.
		if hcl.ExprAsKeyword(e.Wrapped) != "" && !e.ForceNonLiteral {
			return true
		}
		return isLiteral(e.Wrapped)
	}
	return false
}

// traversalName is the attribute a var.NAME or local.NAME traversal names.
func traversalName(t hcl.Traversal) (string, bool) {
	if len(t) < 2 {
		return "", false
	}
	switch s := t[1].(type) {
	case hcl.TraverseAttr:
		return s.Name, true
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
			return s.Key.AsString(), true
		}
	}
	return "", false
}

// checkBodyRefs runs checkRefs on every expression in a body kept raw for a
// provider, so a misspelt var.NAME there is reported at load time like
// anywhere else.
func (l *loader) checkBodyRefs(body hcl.Body, sc scope) hcl.Diagnostics {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var diags hcl.Diagnostics
	for _, name := range sortedKeys(sb.Attributes) {
		diags = append(diags, l.checkRefs(sb.Attributes[name].Expr, sc)...)
	}
	for _, b := range sb.Blocks {
		diags = append(diags, l.checkBodyRefs(b.Body, sc)...)
	}
	return diags
}

// eval checks expr's references and evaluates it. After a reference error
// it returns an unknown value, which later checks skip, so one mistake
// gives one diagnostic.
func (l *loader) eval(expr hcl.Expression, ctx *hcl.EvalContext, sc scope) (cty.Value, hcl.Diagnostics) {
	if v, ok := quotedLiteral(expr); ok {
		return v, nil
	}
	if diags := l.checkRefs(expr, sc); diags.HasErrors() {
		return cty.DynamicVal, diags
	}
	return expr.Value(ctx)
}

// quotedLiteral is the value of a quoted string without interpolations,
// like "llamacpp": its one literal part's, which is what
// TemplateExpr.Value returns after building it again in a buffer. Most
// attributes of a large configuration are such strings.
func quotedLiteral(expr hcl.Expression) (cty.Value, bool) {
	t, ok := expr.(*hclsyntax.TemplateExpr)
	if !ok || !t.IsStringLiteral() {
		return cty.NilVal, false
	}
	v := t.Parts[0].(*hclsyntax.LiteralValueExpr).Val
	if v.IsNull() || !v.IsKnown() || v.IsMarked() || v.Type() != cty.String {
		return cty.NilVal, false
	}
	return v, true
}

// validIdentifier is hclsyntax.ValidIdentifier with a fast path for ASCII
// names (a letter or underscore, then letters, digits, underscores and
// dashes), which the HCL function answers by running its lexer; names are
// checked one after another for every pool of the configuration.
func validIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return hclsyntax.ValidIdentifier(s)
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_':
		case i > 0 && ('0' <= c && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// evalLocals decodes every locals block and evaluates the values in
// dependency order, reporting duplicates and cycles.
func (l *loader) evalLocals(blocks []*hcl.Block) {
	decls := map[string]*hcl.Attribute{}
	var order []string
	for _, b := range blocks {
		attrs, diags := b.Body.JustAttributes()
		l.diags = append(l.diags, diags...)
		for _, a := range sortedAttributes(attrs) {
			if prev, ok := decls[a.Name]; ok {
				l.errorf(a.NameRange.Ptr(), "Duplicate local value definition",
					"A local value named %q was already defined at %s. Local value names must be unique across all *.llorch.hcl files.",
					a.Name, l.pos(prev.Range))
				continue
			}
			decls[a.Name] = a
			order = append(order, a.Name)
		}
	}
	l.localNames = make(map[string]struct{}, len(decls))
	for name := range decls {
		l.localNames[name] = struct{}{}
	}

	deps := make(map[string][]string, len(decls))
	for _, name := range order {
		for _, t := range decls[name].Expr.Variables() {
			if t.RootName() != "local" {
				continue
			}
			if dep, ok := traversalName(t); ok {
				if _, declared := decls[dep]; declared && !slices.Contains(deps[name], dep) {
					deps[name] = append(deps[name], dep)
				}
			}
		}
	}

	sorted, cyclic := l.sortLocals(order, deps, decls)
	l.localVal = make(map[string]cty.Value, len(decls))
	for name := range cyclic {
		l.localVal[name] = cty.DynamicVal
	}
	ctx := &hcl.EvalContext{Functions: l.funcs, Variables: map[string]cty.Value{"var": objectVal(l.varVals)}}
	for _, name := range sorted {
		ctx.Variables["local"] = objectVal(l.localVal)
		val, diags := l.eval(decls[name].Expr, ctx, scope{})
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			val = cty.DynamicVal
		}
		l.localVal[name] = val
	}
}

// sortLocals orders locals so each comes after the locals it uses. Locals
// on a cycle are left out of the order and returned in cyclic, after one
// diagnostic per cycle.
func (l *loader) sortLocals(order []string, deps map[string][]string, decls map[string]*hcl.Attribute) (sorted []string, cyclic map[string]bool) {
	const (
		unvisited = iota
		visiting
		done
	)
	mark := make(map[string]int, len(order))
	cyclic = map[string]bool{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		switch mark[name] {
		case done:
			return
		case visiting:
			i := slices.Index(stack, name)
			cycle := append(slices.Clone(stack[i:]), name)
			for _, n := range cycle {
				cyclic[n] = true
			}
			path := make([]string, len(cycle))
			for j, n := range cycle {
				path[j] = "local." + n
			}
			l.errorf(decls[name].Range.Ptr(), "Cycle in local values",
				"local.%s refers to itself through %s. Break the cycle by computing one of these values without the others.",
				name, strings.Join(path, " → "))
			return
		}
		mark[name] = visiting
		stack = append(stack, name)
		for _, dep := range deps[name] {
			visit(dep)
		}
		stack = stack[:len(stack)-1]
		mark[name] = done
		if !cyclic[name] {
			sorted = append(sorted, name)
		}
	}
	for _, name := range order {
		visit(name)
	}
	return sorted, cyclic
}

// sortByRange sorts items by the start of their source range: file name,
// then byte offset.
func sortByRange[T any](items []T, rng func(T) hcl.Range) {
	slices.SortStableFunc(items, func(a, b T) int {
		ra, rb := rng(a), rng(b)
		if c := strings.Compare(ra.Filename, rb.Filename); c != 0 {
			return c
		}
		return ra.Start.Byte - rb.Start.Byte
	})
}
