package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// Options control Human output.
type Options struct {
	// Color adds ANSI colors: green +, yellow ~, red -, bold headings.
	Color bool
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
)

// printer writes one plan. Its bufio.Writer keeps the first write error
// and Flush returns it, so the rendering code can stay linear.
type printer struct {
	w     *bufio.Writer
	color bool
}

func (pr *printer) printf(format string, args ...any) { fmt.Fprintf(pr.w, format, args...) }

func (pr *printer) paint(code, s string) string {
	if !pr.color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (pr *printer) bold(s string) string { return pr.paint(ansiBold, s) }

// symbol colors an action symbol the way Terraform does.
func (pr *printer) symbol(sym string) string {
	if !pr.color {
		return sym
	}
	var b strings.Builder
	for _, r := range sym {
		switch r {
		case '+':
			b.WriteString(ansiGreen + "+" + ansiReset)
		case '-':
			b.WriteString(ansiRed + "-" + ansiReset)
		case '~':
			b.WriteString(ansiYellow + "~" + ansiReset)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Human writes p as Terraform writes a plan: drift ("Objects have changed
// outside of llorch"), every change with its attributes, the summary line,
// then warnings.
func Human(w io.Writer, p *plan.Plan, opts Options) error {
	pr := &printer{w: bufio.NewWriter(w), color: opts.Color}
	if len(p.Drift) > 0 {
		pr.printf("\n%s\n\n", pr.bold("Objects have changed outside of llorch:"))
		for _, d := range p.Drift {
			pr.printf("  %s\n", pr.bold("# "+d.Addr+" "+driftPhrase(d)))
			if d.Reason != "" {
				pr.printf("  # (%s)\n", d.Reason)
			}
			pr.printf("\n")
		}
	}
	switch {
	case p.Empty() && p.Destroy:
		pr.printf("%s%s\n\n", blankUnless(len(p.Drift) > 0), pr.bold("No changes. No pools need to be destroyed."))
		pr.printf("Either no pools were applied yet or they were already removed from the state.\n")
	case p.Empty():
		pr.printf("%s%s\n\n", blankUnless(len(p.Drift) > 0), pr.bold("No changes. Your pools match the configuration."))
		if len(p.Drift) > 0 {
			pr.printf("The changes above happened outside of llorch and need no action: the supervisors are handling them.\n")
		} else if p.Options.Refresh {
			pr.printf("llorch has compared your pools against the configuration and the running replicas and found no differences, so no changes are needed.\n")
		} else {
			pr.printf("llorch has compared the state against the configuration and found no differences. The running replicas were not checked (-refresh=false).\n")
		}
	default:
		if len(p.Drift) == 0 {
			pr.printf("\n")
		}
		pr.printf("llorch will perform the following actions:\n\n")
		for _, c := range p.Changes {
			renderChange(pr, c)
			pr.printf("\n")
		}
		for _, u := range p.Unknown {
			renderUnknown(pr, u)
			pr.printf("\n")
		}
		pr.printf("%s %s.\n", pr.bold("Plan:"), p.Summary())
		if d := p.DowntimeSummary(); d != "" {
			pr.printf("%s %s.\n", pr.bold("Downtime:"), d)
		}
	}
	if ShowFit(p.Fit) {
		var b strings.Builder
		FitTable(&b, p.Fit)
		pr.printf("\n%s", b.String())
	}
	for _, warn := range p.Warnings {
		summary, rest, _ := strings.Cut(warn, "\n")
		pr.printf("\n%s%s\n", pr.paint(ansiBold+ansiYellow, "Warning: "), pr.bold(summary))
		if rest != "" {
			pr.printf("%s\n", rest)
		}
	}
	return pr.w.Flush()
}

// blankUnless starts a section with a blank line unless the one before
// already ended with one.
func blankUnless(ended bool) string {
	if ended {
		return ""
	}
	return "\n"
}

func driftPhrase(d *plan.Drift) string {
	switch d.Status {
	case "", state.StatusFailed, state.StatusStopped, state.StatusExited:
		return "is not running"
	}
	return "has changed"
}

// renderUnknown writes a running supervisor the state does not know,
// which apply stops.
func renderUnknown(pr *printer, u plan.Unknown) {
	addr := u.Addr
	if addr == "" {
		addr = filepath.Base(u.RunDir)
	}
	pr.printf("  %s\n", pr.bold("# "+addr+" is running but not in the state, so it will be stopped"))
	engine := "no engine running"
	if u.PID > 0 {
		engine = fmt.Sprintf("engine pid %d", u.PID)
		if u.Port > 0 {
			engine += fmt.Sprintf(" on port %d", u.Port)
		}
	}
	pr.printf("  # (supervisor pid %d, %s, %s; run directory %s)\n", u.SupervisorPID, engine, u.Status, u.RunDir)
}

// renderChange writes one change: its header comments, then the pool block
// with its attributes.
func renderChange(pr *printer, c *plan.Change) {
	addr := c.Addr
	poolAddr, replica := plan.SplitReplicaAddr(addr)
	head := func(s string) { pr.printf("  %s\n", pr.bold("# "+addr+" "+s)) }
	note := func(s string) { pr.printf("  # (%s)\n", s) }
	downtime := func() {
		if d := c.Downtime(); d != nil {
			note("downtime: " + d.Detail)
		}
	}

	switch {
	case c.Action == plan.Restart:
		head("will be restarted")
		if c.Detail != "" {
			note(c.Detail)
		}
		downtime()
		return
	case replica != "" && c.Action.IsReplace():
		if c.Reason == plan.ReplaceBecausePortMoved {
			head("must be moved to its configured port")
			note(c.Detail)
		} else {
			head("will be replaced, as requested")
		}
		if c.Action == plan.CreateThenDelete {
			note(fmt.Sprintf("a new %s starts and must be ready before the old one is drained and stopped", replica))
		} else {
			note(fmt.Sprintf("%s is drained and stopped, then started again", replica))
		}
		downtime()
		return
	case c.Action == plan.Create:
		head("will be created")
	case c.Action == plan.Update:
		head("will be updated in-place")
	case c.Action.IsReplace() && c.Reason == plan.ReplaceByRequest:
		head("will be replaced, as requested")
	case c.Action.IsReplace():
		head("must be replaced")
	case c.Action == plan.Delete:
		head("will be destroyed")
		if c.Reason == plan.DeleteBecauseNoConfig {
			note(fmt.Sprintf("because %s is not in the configuration", poolAddr))
		}
	}
	for _, f := range c.ForcedBy {
		switch f {
		case "binary":
			note("the engine binary changed on disk")
		case "model file":
			note("the model file changed on disk")
		}
	}
	if c.Action == plan.Update {
		var created, deleted []string
		for _, id := range c.Replicas {
			if c.Before != nil && c.Before.Replica(id) != nil {
				deleted = append(deleted, id)
			} else {
				created = append(created, id)
			}
		}
		if len(created) > 0 {
			note(replicaList(created) + " will be created")
		}
		if len(deleted) > 0 {
			note(replicaList(deleted) + " will be destroyed")
		}
	}

	downtime()
	sym := actionSymbol(c.Action)
	name := poolName(poolAddr)
	pr.printf("%s pool %q {\n", padSymbol(pr, sym), name)
	root := buildTree(c)
	var model *providers.ModelInfo
	if c.After != nil && c.After.Planned != nil {
		model = c.After.Planned.Model
	}
	r := &treeRenderer{pr: pr, action: c.Action, model: model}
	r.body(root, 1)
	pr.printf("    }\n")
}

func replicaList(ids []string) string {
	if len(ids) == 1 {
		return "replica " + ids[0]
	}
	return "replicas " + strings.Join(ids, ", ")
}

func actionSymbol(a plan.Action) string {
	switch a {
	case plan.Create:
		return "+"
	case plan.Update:
		return "~"
	case plan.CreateThenDelete:
		return "+/-"
	case plan.DeleteThenCreate:
		return "-/+"
	case plan.Delete:
		return "-"
	}
	return " "
}

// padSymbol right-aligns a symbol in four columns, as Terraform does: one
// symbol after two spaces, a replace symbol at the margin.
func padSymbol(pr *printer, sym string) string {
	if len(sym) == 1 {
		return "  " + pr.symbol(sym)
	}
	return pr.symbol(sym)
}

func poolName(addr string) string {
	a, err := plan.ParseAddr(addr)
	if err != nil {
		return addr
	}
	return a.Name
}

// node is an attribute, a map attribute (env, labels) or a block in the
// rendered tree.
type node struct {
	name     string
	isBlock  bool
	isMap    bool
	attr     *plan.AttrDiff // leaves and map elements
	children []*node
}

func (n *node) child(name string, block, isMap bool) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	c := &node{name: name, isBlock: block, isMap: isMap}
	n.children = append(n.children, c)
	return c
}

// buildTree turns a change's dotted attribute paths into nested nodes:
// "env.FOO" is element FOO of map env, "model.ref" attribute ref of block
// model, "llamacpp.source.git" attribute git of block source in block
// llamacpp.
func buildTree(c *plan.Change) *node {
	root := &node{isBlock: true}
	add := func(a plan.AttrDiff) {
		segs := strings.Split(a.Path, ".")
		if segs[0] == "env" || segs[0] == "labels" {
			if len(segs) < 2 {
				return
			}
			m := root.child(segs[0], false, true)
			key := strings.Join(segs[1:], ".")
			m.children = append(m.children, &node{name: key, attr: &a})
			return
		}
		n := root
		for _, s := range segs[:len(segs)-1] {
			n = n.child(s, true, false)
		}
		n.children = append(n.children, &node{name: segs[len(segs)-1], attr: &a})
	}
	for _, a := range c.Attrs {
		add(a)
	}
	for _, a := range c.Unchanged {
		add(a)
	}
	return root
}

// change is the symbol of one node: "+", "-", "~" or " " (unchanged).
func (r *treeRenderer) change(n *node) string {
	switch r.action {
	case plan.Create:
		return "+"
	case plan.Delete:
		return "-"
	}
	if n.attr != nil {
		a := n.attr
		switch {
		case sameValue(a.Before, a.After) && a.Path != "engine_version":
			return " "
		case a.Before == nil && a.Path != "engine_version":
			return "+"
		case a.After == nil && a.Path != "engine_version":
			return "-"
		}
		return "~"
	}
	sym := ""
	for _, c := range n.children {
		s := r.change(c)
		switch {
		case s == " ":
			if sym != "" && sym != " " {
				sym = "~"
			} else {
				sym = " "
			}
		case sym == "" || sym == s:
			sym = s
		default:
			sym = "~"
		}
	}
	if sym == "" {
		return " "
	}
	return sym
}

type treeRenderer struct {
	pr     *printer
	action plan.Action
	model  *providers.ModelInfo
}

// visible reports whether a node is shown: changed nodes always; on create
// and delete, everything but health/restart/drain/update settings at their
// defaults.
func (r *treeRenderer) visible(n *node) bool {
	if r.action != plan.Create && r.action != plan.Delete {
		return r.change(n) != " "
	}
	if n.attr != nil {
		def, isSetting := defaults()[n.attr.Path]
		return !isSetting || formatValue(def) != formatValue(pick(r.action, n.attr))
	}
	for _, c := range n.children {
		if r.visible(c) {
			return true
		}
	}
	return false
}

// defaults are the settings' default values, made when first rendered.
var defaults = sync.OnceValue(plan.DefaultSettings)

func pick(a plan.Action, d *plan.AttrDiff) any {
	if a == plan.Delete {
		return d.Before
	}
	return d.After
}

// body writes the children of a block at nesting level lvl (1 = inside the
// pool block): attributes first, then the hidden-attribute count, then
// blocks, then the hidden-block count.
func (r *treeRenderer) body(n *node, lvl int) {
	symCol := strings.Repeat(" ", 2+4*lvl)
	noteCol := strings.Repeat(" ", 4+4*lvl)
	var attrs, blocks []*node
	hiddenAttrs, hiddenBlocks := 0, 0
	for _, c := range n.children {
		shown := r.visible(c)
		switch {
		case c.isBlock && shown:
			blocks = append(blocks, c)
		case c.isBlock:
			if r.action != plan.Create && r.action != plan.Delete {
				hiddenBlocks++
			}
		case shown:
			attrs = append(attrs, c)
		default:
			if r.action != plan.Create && r.action != plan.Delete {
				hiddenAttrs++
			}
		}
	}
	width := 0
	for _, a := range attrs {
		width = max(width, len(a.name))
	}
	for _, a := range attrs {
		sym := r.change(a)
		if a.isMap {
			r.mapAttr(a, lvl, width)
			continue
		}
		r.pr.printf("%s%s %-*s = %s%s\n", symCol, r.pr.symbol(sym), width, a.name, r.valueChange(a.attr, sym), forces(a.attr))
	}
	if hiddenAttrs > 0 {
		r.pr.printf("%s# (%d unchanged %s hidden)\n", noteCol, hiddenAttrs, plural(hiddenAttrs, "attribute", "attributes"))
	}
	if n.name == "model" && lvl == 2 && r.model != nil && r.action != plan.Delete {
		r.pr.printf("%s# %s\n", noteCol, modelSummary(r.model))
	}
	for _, b := range blocks {
		r.pr.printf("%s%s %s {\n", symCol, r.pr.symbol(r.change(b)), b.name)
		r.body(b, lvl+1)
		r.pr.printf("%s}\n", noteCol)
	}
	if hiddenBlocks > 0 {
		r.pr.printf("%s# (%d unchanged %s hidden)\n", noteCol, hiddenBlocks, plural(hiddenBlocks, "block", "blocks"))
	}
}

// mapAttr writes env or labels element by element.
func (r *treeRenderer) mapAttr(n *node, lvl, width int) {
	symCol := strings.Repeat(" ", 2+4*lvl)
	noteCol := strings.Repeat(" ", 4+4*lvl)
	innerSym := strings.Repeat(" ", 2+4*(lvl+1))
	innerNote := strings.Repeat(" ", 4+4*(lvl+1))
	r.pr.printf("%s%s %-*s = {\n", symCol, r.pr.symbol(r.change(n)), width, n.name)
	hidden := 0
	var shown []*node
	for _, e := range n.children {
		if r.visible(e) {
			shown = append(shown, e)
		} else {
			hidden++
		}
	}
	kw := 0
	for _, e := range shown {
		kw = max(kw, len(hclQuote(e.name)))
	}
	for _, e := range shown {
		sym := r.change(e)
		r.pr.printf("%s%s %-*s = %s%s\n", innerSym, r.pr.symbol(sym), kw, hclQuote(e.name), r.valueChange(e.attr, sym), forces(e.attr))
	}
	if hidden > 0 {
		r.pr.printf("%s# (%d unchanged %s hidden)\n", innerNote, hidden, plural(hidden, "element", "elements"))
	}
	r.pr.printf("%s}\n", noteCol)
}

func forces(a *plan.AttrDiff) string {
	if a != nil && a.Forces {
		return " # forces replacement"
	}
	return ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// valueChange renders an attribute's value for its symbol: the value
// itself, "old -> new", or "old -> null".
func (r *treeRenderer) valueChange(a *plan.AttrDiff, sym string) string {
	before := displayValue(a.Before, a.Sensitive)
	after := displayValue(a.After, a.Sensitive)
	if a.Path == "engine_version" && a.After == nil {
		after = "(known after apply)"
	}
	switch {
	case sym == "+" || sym == " ":
		return after
	case sym == "-":
		return before + " -> null"
	case a.Sensitive && a.Before != nil && a.After != nil:
		return "(sensitive value)" // a changed secret, shown as Terraform shows one
	}
	return before + " -> " + after
}

func displayValue(v any, sensitive bool) string {
	if sensitive && v != nil {
		return "(sensitive value)"
	}
	return formatValue(v)
}

// sameValue compares two attribute values by their rendering, which is
// what matters here and works for values read back from JSON.
func sameValue(a, b any) bool { return formatValue(a) == formatValue(b) }

// formatValue writes v in HCL syntax.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return hclQuote(x)
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case json.Number:
		return x.String()
	case json.RawMessage:
		dec := json.NewDecoder(bytes.NewReader(x))
		dec.UseNumber()
		var tree any
		if err := dec.Decode(&tree); err != nil {
			return string(x)
		}
		return formatValue(tree)
	case []int:
		parts := make([]string, len(x))
		for i, n := range x {
			parts[i] = strconv.Itoa(n)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = hclQuote(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		if len(x) == 0 {
			return "{}"
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = hclKey(k) + " = " + formatValue(x[k])
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return fmt.Sprint(v)
}

// hclQuote quotes s as an HCL string literal: Go escapes, plus the
// template sequences HCL would otherwise interpret.
func hclQuote(s string) string {
	q := strconv.Quote(s)
	q = strings.ReplaceAll(q, "${", "$${")
	return strings.ReplaceAll(q, "%{", "%%{")
}

func hclKey(k string) string {
	for i, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c == '-' || c >= '0' && c <= '9')) {
			return hclQuote(k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}

// modelSummary is the comment shown under a model block:
// "GGUF llama, 4.2M params, Q8_0, trained ctx 256, 9.0 MiB".
func modelSummary(m *providers.ModelInfo) string {
	parts := []string{strings.TrimSpace("GGUF " + m.Architecture)}
	if m.Parameters > 0 {
		parts = append(parts, humanCount(m.Parameters)+" params")
	}
	if m.Quantization != "" {
		parts = append(parts, m.Quantization)
	}
	if m.ContextLength > 0 {
		parts = append(parts, fmt.Sprintf("trained ctx %d", m.ContextLength))
	}
	if m.SizeBytes > 0 {
		parts = append(parts, humanBytes(m.SizeBytes))
	}
	return strings.Join(parts, ", ")
}

func humanCount(n uint64) string {
	units := []struct {
		div    float64
		suffix string
	}{{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}}
	for _, u := range units {
		if float64(n) >= u.div {
			v := float64(n) / u.div
			if v >= 100 {
				return fmt.Sprintf("%.0f%s", v, u.suffix)
			}
			return fmt.Sprintf("%.1f%s", v, u.suffix)
		}
	}
	return strconv.FormatUint(n, 10)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, suffix := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || suffix == "TiB" {
			return fmt.Sprintf("%.1f %s", v, suffix)
		}
	}
	return fmt.Sprintf("%d B", n)
}
