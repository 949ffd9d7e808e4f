package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/llorch/llorch/internal/didyoumean"
)

// SensitiveMark is the cty mark on every value that comes from a variable
// declared with sensitive = true, and on everything computed from one.
// Provider bodies keep it; Pool fields are unmarked, with SensitivePaths
// saying which of them carried it.
const SensitiveMark = valueMark("sensitive")

type valueMark string

// varDecl is a variable block plus what Load needs to finish it.
type varDecl struct {
	v           *Variable
	hasDefault  bool
	defaults    *typeexpr.Defaults
	validations []*validation
	// final is the winning assignment, before conversion to v.Type.
	final *assignment
	// badType is set when the type expression was invalid: the variable
	// then gets an unknown value and no further diagnostics.
	badType bool
}

type validation struct {
	condition    hcl.Expression
	errorMessage hcl.Expression
	declRange    hcl.Range
}

// assignment is one value given to a variable, and where it came from.
type assignment struct {
	val cty.Value
	// from says where the value came from, for diagnostics: "the
	// LLORCH_VAR_models environment variable".
	from string
	// subject is the value's source range when it came from a file.
	subject *hcl.Range
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

const nameRule = "A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes."

func (l *loader) decodeVariables(blocks []*hcl.Block) {
	l.vars = map[string]*varDecl{}
	for _, b := range blocks {
		name := b.Labels[0]
		if !validIdentifier(name) {
			l.errorf(b.LabelRanges[0].Ptr(), "Invalid variable name", "%q is not a valid variable name. %s", name, nameRule)
			continue
		}
		if prev, ok := l.vars[name]; ok {
			l.errorf(b.DefRange.Ptr(), "Duplicate variable declaration",
				"A variable named %q was already declared at %s. Variable names must be unique across all *.llorch.hcl files.",
				name, l.pos(prev.v.DeclRange))
			continue
		}
		d := l.decodeVariable(b)
		l.vars[name] = d
		l.cfg.Variables[name] = d.v
	}
}

func (l *loader) decodeVariable(b *hcl.Block) *varDecl {
	v := &Variable{Name: b.Labels[0], Type: cty.DynamicPseudoType, DeclRange: b.DefRange}
	d := &varDecl{v: v}
	content, diags := b.Body.Content(variableSchema)
	l.diags = append(l.diags, diags...)

	if a, ok := content.Attributes["type"]; ok {
		ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			d.badType = true
		} else {
			v.Type, d.defaults = ty, defaults
		}
	}
	if a, ok := content.Attributes["description"]; ok {
		if val, ok := l.staticValue(a, cty.String); ok {
			v.Description = val.AsString()
		}
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		if val, ok := l.staticValue(a, cty.Bool); ok {
			v.Sensitive = val.True()
		}
	}
	if a, ok := content.Attributes["default"]; ok {
		d.hasDefault = true
		val, diags := a.Expr.Value(nil) // defaults are literal values, as in Terraform
		l.diags = append(l.diags, diags...)
		if !diags.HasErrors() {
			conv, err := l.convertVar(d, val)
			if err != nil {
				l.errorf(a.Expr.Range().Ptr(), "Invalid default value for variable",
					"The default value of variable %q does not match its type %s: %s.",
					v.Name, typeexpr.TypeString(v.Type), err)
				conv = cty.UnknownVal(v.Type)
			}
			v.Default = conv
		} else {
			v.Default = cty.UnknownVal(v.Type)
		}
	}
	for _, vb := range content.Blocks {
		vc, diags := vb.Body.Content(validationSchema)
		l.diags = append(l.diags, diags...)
		cond, hasCond := vc.Attributes["condition"]
		msg, hasMsg := vc.Attributes["error_message"]
		if !hasCond || !hasMsg {
			continue
		}
		d.validations = append(d.validations, &validation{condition: cond.Expr, errorMessage: msg.Expr, declRange: vb.DefRange})
	}
	return d
}

// staticValue evaluates a without variables or functions and converts it
// to ty; ok is false after an error, which it reports.
func (l *loader) staticValue(a *hcl.Attribute, ty cty.Type) (cty.Value, bool) {
	val, diags := a.Expr.Value(nil)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	conv, err := convert.Convert(val, ty)
	if err != nil {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Inappropriate value for attribute %q: %s.", a.Name, err)
		return cty.NilVal, false
	}
	if conv.IsNull() {
		l.errorf(a.Expr.Range().Ptr(), "Invalid value", "The attribute %q must not be null.", a.Name)
		return cty.NilVal, false
	}
	return conv, true
}

// convertVar applies the type's optional-attribute defaults and converts
// val to the variable's type.
func (l *loader) convertVar(d *varDecl, val cty.Value) (cty.Value, error) {
	if d.defaults != nil {
		val = d.defaults.Apply(val)
	}
	return convert.Convert(val, d.v.Type)
}

// assignVariables gives every variable its final value: default, then
// LLORCH_VAR_<name>, then *.auto.llorchvars.hcl in name order, then -var and
// -var-file in command-line order; the last one wins.
func (l *loader) assignVariables() {
	for _, name := range sortedKeys(l.vars) {
		d := l.vars[name]
		if raw, ok := l.environ[EnvVarPrefix+name]; ok {
			l.assignRaw(d, raw, fmt.Sprintf("the %s%s environment variable", EnvVarPrefix, name))
		}
	}
	for _, name := range l.autoVarFileNames() {
		l.assignFile(name)
	}
	for _, arg := range l.opts.Vars {
		if arg.File != "" {
			l.assignFile(arg.File)
			continue
		}
		d, ok := l.vars[arg.Name]
		if !ok {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail: fmt.Sprintf("A variable named %q was assigned on the command line, but no variable %q {} block declares it.%s Declare it, or remove the -var option.",
					arg.Name, arg.Name, l.suggestVar(arg.Name)),
			})
			continue
		}
		l.assignRaw(d, arg.Value, "the command line (-var)")
	}

	l.varVals = map[string]cty.Value{}
	for _, name := range sortedKeys(l.vars) {
		d := l.vars[name]
		v := d.v
		switch {
		case d.badType:
			v.Value = cty.DynamicVal
		case d.final != nil:
			conv, err := l.convertVar(d, d.final.val)
			if err != nil {
				subject := d.final.subject
				if subject == nil {
					subject = v.DeclRange.Ptr()
				}
				l.errorf(subject, "Invalid value for input variable",
					"The value for variable %q from %s does not match its type %s: %s.",
					name, d.final.from, typeexpr.TypeString(v.Type), err)
				conv = cty.UnknownVal(v.Type)
			}
			v.Value = conv
		case d.hasDefault:
			v.Value = v.Default
		case l.opts.Validate:
			v.Value = cty.UnknownVal(v.Type)
		default:
			l.errorf(v.DeclRange.Ptr(), "No value for required variable",
				"The variable %q has no default value, so it must be set. Use -var '%s=VALUE', a -var-file, a *.auto.llorchvars.hcl file, or the %s%s environment variable, or give the variable a default.",
				name, name, EnvVarPrefix, name)
			v.Value = cty.UnknownVal(v.Type)
		}
		val := v.Value
		if v.Sensitive {
			val = val.Mark(SensitiveMark)
		}
		l.varVals[name] = val
	}
}

// assignRaw records a value given as a string (-var, LLORCH_VAR_*): kept as
// the string for string and untyped variables, parsed as an HCL expression
// for the others, as Terraform does.
func (l *loader) assignRaw(d *varDecl, raw, from string) {
	if d.v.Type == cty.String || d.v.Type == cty.DynamicPseudoType {
		d.final = &assignment{val: cty.StringVal(raw), from: from}
		return
	}
	if d.v.Type == cty.Number || d.v.Type == cty.Bool {
		// A primitive is its literal text, as Terraform reads -var n=3,
		// or else an HCL expression of that type (-var 'n=2 * 21').
		val, err := convert.Convert(cty.StringVal(raw), d.v.Type)
		if err != nil {
			if expr, diags := hclsyntax.ParseExpression([]byte(raw), "", hcl.InitialPos); !diags.HasErrors() {
				if v, diags := expr.Value(nil); !diags.HasErrors() && v.IsWhollyKnown() {
					val, err = convert.Convert(v, d.v.Type)
				}
			}
		}
		if err != nil {
			what, like := "a number", fmt.Sprintf("-var '%s=3'", d.v.Name)
			if d.v.Type == cty.Bool {
				what, like = "true or false", fmt.Sprintf("-var '%s=true'", d.v.Name)
			}
			l.errorf(d.v.DeclRange.Ptr(), "Invalid value for input variable",
				"The value %q for variable %q from %s is not %s: variable %q is of type %s. Write %s, like %s.",
				raw, d.v.Name, from, what, d.v.Name, typeexpr.TypeString(d.v.Type), what, like)
			val = cty.UnknownVal(d.v.Type)
		}
		d.final = &assignment{val: val, from: from}
		return
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), fmt.Sprintf("<value for var.%s>", d.v.Name), hcl.InitialPos)
	var val cty.Value
	if !diags.HasErrors() {
		val, diags = expr.Value(nil)
	}
	if diags.HasErrors() {
		l.errorf(d.v.DeclRange.Ptr(), "Invalid value for input variable",
			"The value %q for variable %q from %s is not a valid %s: %s. Values for variables of this type are written in HCL syntax, like [\"a\", \"b\"] or { key = \"value\" }.",
			raw, d.v.Name, from, typeexpr.TypeString(d.v.Type), firstDiagText(diags))
		d.final = &assignment{val: cty.UnknownVal(d.v.Type), from: from}
		return
	}
	d.final = &assignment{val: val, from: from}
}

// assignFile records the assignments in a variables file (an auto file or
// -var-file), evaluated without variables or functions.
func (l *loader) assignFile(name string) {
	f := l.parseFile(name)
	if f == nil {
		return
	}
	attrs, diags := f.Body.JustAttributes()
	l.diags = append(l.diags, diags...)
	for _, a := range sortedAttributes(attrs) {
		d, ok := l.vars[a.Name]
		if !ok {
			l.errorf(a.NameRange.Ptr(), "Value for undeclared variable",
				"A variable named %q is assigned in %s, but no variable %q {} block declares it.%s Declare it, or remove the assignment.",
				a.Name, filepath.Base(name), a.Name, l.suggestVar(a.Name))
			continue
		}
		val, diags := a.Expr.Value(nil)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			val = cty.UnknownVal(d.v.Type)
		}
		d.final = &assignment{val: val, from: filepath.Base(name), subject: a.Expr.Range().Ptr()}
	}
}

// validateVariables runs every validation block against its variable's
// final value.
func (l *loader) validateVariables() {
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": objectVal(l.varVals)},
		Functions: l.funcs,
	}
	for _, name := range sortedKeys(l.vars) {
		d := l.vars[name]
		if !d.v.Value.IsWhollyKnown() {
			continue // no value, already reported
		}
		valid := true
		for _, vd := range d.validations {
			valid = l.runValidation(d.v, vd, ctx) && valid
		}
		if !valid {
			// Every later use of the value would only repeat the error in
			// other words ("replicas must be at least 1"), so it becomes
			// unknown, which uses skip, as after any other error.
			d.v.Value = cty.UnknownVal(d.v.Type)
			l.varVals[name] = cty.UnknownVal(d.v.Type).WithMarks(l.varVals[name].Marks())
		}
	}
}

// runValidation checks v against one validation block and reports whether
// the value passed: false only when the condition is false, not when the
// rule itself is broken (that is reported, but says nothing of the value).
func (l *loader) runValidation(v *Variable, vd *validation, ctx *hcl.EvalContext) bool {
	// Validations run before locals exist, so they may use only variables.
	var refDiags hcl.Diagnostics
	for _, t := range vd.condition.Variables() {
		if t.RootName() != "local" {
			refDiags = append(refDiags, l.checkTraversal(t, scope{})...)
			continue
		}
		refDiags = append(refDiags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference in variable validation",
			Detail:   fmt.Sprintf("The condition for variable %q can refer only to input variables (var.NAME), not to local values.", v.Name),
			Subject:  t.SourceRange().Ptr(),
		})
	}
	l.diags = append(l.diags, refDiags...)
	if refDiags.HasErrors() {
		return true // the rule is broken, not the value
	}
	result, diags := vd.condition.Value(ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || !result.IsWhollyKnown() {
		return true
	}
	result, _ = result.Unmark()
	if result.IsNull() {
		l.errorf(vd.condition.Range().Ptr(), "Invalid variable validation result",
			"The condition for variable %q returned null; it must return true or false.", v.Name)
		return true
	}
	result, err := convert.Convert(result, cty.Bool)
	if err != nil {
		l.errorf(vd.condition.Range().Ptr(), "Invalid variable validation result",
			"The condition for variable %q must return true or false: %s.", v.Name, err)
		return true
	}
	if result.True() {
		return true
	}
	l.errorf(vd.condition.Range().Ptr(), "Invalid value for variable",
		"%s\n\nThis was checked by the validation rule at %s.", l.validationMessage(v, vd, ctx), l.pos(vd.declRange))
	return false
}

// validationMessage evaluates error_message. A message that would show a
// sensitive value is replaced, because diagnostics are printed.
func (l *loader) validationMessage(v *Variable, vd *validation, ctx *hcl.EvalContext) string {
	val, diags := vd.errorMessage.Value(ctx)
	if diags.HasErrors() {
		l.diags = append(l.diags, diags...)
		return fmt.Sprintf("The value of variable %q is not valid.", v.Name)
	}
	if val.IsMarked() || val.ContainsMarked() {
		return fmt.Sprintf("The value of variable %q is not valid. (The error message refers to a sensitive value, so it is not shown.)", v.Name)
	}
	str, err := convert.Convert(val, cty.String)
	if err != nil || str.IsNull() || !str.IsKnown() {
		l.errorf(vd.errorMessage.Range().Ptr(), "Invalid validation error message",
			"The error_message for variable %q must be a string.", v.Name)
		return fmt.Sprintf("The value of variable %q is not valid.", v.Name)
	}
	return strings.TrimSpace(str.AsString())
}

func (l *loader) suggestVar(name string) string {
	if s := didyoumean.NameSuggestion(name, sortedKeys(l.vars)); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// firstDiagText is the first error's summary and detail, for diagnostics
// that wrap another one whose range points nowhere useful.
func firstDiagText(diags hcl.Diagnostics) string {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			return strings.TrimSuffix(d.Summary+"; "+d.Detail, ".")
		}
	}
	return "invalid value"
}

// sortedAttributes returns attrs in source order.
func sortedAttributes(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sortByRange(out, func(a *hcl.Attribute) hcl.Range { return a.Range })
	return out
}
