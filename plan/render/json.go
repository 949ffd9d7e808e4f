package render

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// JSONFormatVersion is the format_version of the JSON document. Consumers
// should accept any 1.x: minor versions only add fields.
const JSONFormatVersion = "1.0"

// Document is the JSON form of a plan (`llorch plan -json`), shaped like
// Terraform's `show -json` plan representation.
type Document struct {
	FormatVersion   string           `json:"format_version"`
	LlorchVersion   string           `json:"llorch_version"`
	Lineage         string           `json:"lineage"`
	Serial          uint64           `json:"serial"`
	ResourceChanges []ResourceChange `json:"resource_changes"`
	ResourceDrift   []ResourceDrift  `json:"resource_drift"`
	Warnings        []string         `json:"warnings"`
	Summary         Summary          `json:"summary"`
	// Downtime totals what the plan leaves clients without ("none",
	// "pool.chat unavailable ≈ 2s"); absent when no change touches a
	// serving replica.
	Downtime string `json:"downtime,omitempty"`
	// UnknownSupervisors are running supervisors the state does not know;
	// apply stops them.
	UnknownSupervisors []UnknownSupervisor `json:"unknown_supervisors,omitempty"`
	// Fit is the memory fit table and each pool's estimate; absent when
	// the plan made no fit check (destroy, a saved plan).
	Fit *Fit `json:"fit,omitempty"`
}

// UnknownSupervisor is a supervisor running in a run directory that no
// replica of the state names.
type UnknownSupervisor struct {
	Address       string `json:"address,omitempty"` // as its spec names it
	RunDir        string `json:"run_dir"`
	SupervisorPID int    `json:"supervisor_pid"`
	PID           int    `json:"pid"`
	Port          int    `json:"port,omitempty"`
	Status        string `json:"status"`
}

// ResourceChange is one pool or replica and what the plan does to it.
type ResourceChange struct {
	Address string `json:"address"`
	Mode    string `json:"mode"` // always "managed"
	Type    string `json:"type"` // always "pool"
	Name    string `json:"name"`
	// Index is the for_each key (string) or count index (number); absent
	// for a pool without either.
	Index   any    `json:"index,omitempty"`
	Replica string `json:"replica,omitempty"`
	Change  Change `json:"change"`
	// ActionReason says why, when the action alone does not
	// ("replace_because_cannot_update", "restart_because_exited", …).
	ActionReason string `json:"action_reason,omitempty"`
	// ActionDetail is the human reason of a restart ("process 4242 is not
	// running").
	ActionDetail string `json:"action_detail,omitempty"`
	// Replicas lists the replica ids the change touches.
	Replicas []string `json:"replicas,omitempty"`
	// Downtime is what the change leaves clients without; absent for a
	// create and a no-op.
	Downtime *Downtime `json:"downtime,omitempty"`
}

// Downtime is plan.Downtime with the durations in seconds.
type Downtime struct {
	Kind             string  `json:"kind"` // none | partial | gap | unavailable | removed
	EstimateSeconds  float64 `json:"estimate_seconds,omitempty"`
	LastStartSeconds float64 `json:"last_start_seconds,omitempty"`
	LastStopSeconds  float64 `json:"last_stop_seconds,omitempty"`
	Detail           string  `json:"detail"`
}

// Change is the before and after of a resource change. Before and After
// are the pool's normalized spec, sensitive values as "sha256:…" hashes;
// BeforeSensitive and AfterSensitive mirror their shape with true where a
// value is sensitive (false when none is).
type Change struct {
	Actions         []string    `json:"actions"`
	Before          *state.Spec `json:"before"`
	After           *state.Spec `json:"after"`
	ReplacePaths    [][]string  `json:"replace_paths,omitempty"`
	BeforeSensitive any         `json:"before_sensitive"`
	AfterSensitive  any         `json:"after_sensitive"`
}

// ResourceDrift is a replica that changed outside of llorch.
type ResourceDrift struct {
	Address string `json:"address"`
	Mode    string `json:"mode"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Index   any    `json:"index,omitempty"`
	Replica string `json:"replica,omitempty"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Cause   string `json:"cause,omitempty"` // model_load_failed, out_of_memory, bad_argument, port_in_use, crashed
}

// Summary counts the changes, as the human summary line does.
type Summary struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	Restart int `json:"restart"`
	Unknown int `json:"unknown_to_stop,omitempty"`
}

// JSON writes p as one JSON document followed by a newline.
func JSON(w io.Writer, p *plan.Plan) error {
	doc := NewDocument(p)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("writing plan as JSON: %w", err)
	}
	return nil
}

// NewDocument builds the JSON document of p. Configured pools with no
// change appear with the action "no-op", as in Terraform.
func NewDocument(p *plan.Plan) *Document {
	s := p.Summary()
	doc := &Document{
		FormatVersion:   JSONFormatVersion,
		LlorchVersion:   p.LlorchVersion,
		Lineage:         p.Lineage,
		Serial:          p.Serial,
		ResourceChanges: []ResourceChange{},
		ResourceDrift:   []ResourceDrift{},
		Warnings:        append([]string{}, p.Warnings...),
		Summary:         Summary{Add: s.Add, Change: s.Change, Destroy: s.Destroy, Restart: s.Restart, Unknown: s.Unknown},
		Downtime:        p.DowntimeSummary(),
		Fit:             NewFit(p.Fit),
	}
	for _, u := range p.Unknown {
		doc.UnknownSupervisors = append(doc.UnknownSupervisors, UnknownSupervisor{
			Address: u.Addr, RunDir: u.RunDir, SupervisorPID: u.SupervisorPID, PID: u.PID, Port: u.Port, Status: u.Status,
		})
	}
	changed := map[string]bool{}
	for _, c := range p.Changes {
		changed[c.Addr] = true
		doc.ResourceChanges = append(doc.ResourceChanges, resourceChange(c))
	}
	if !p.Destroy {
		var noops []ResourceChange
		for addr, d := range p.Desired {
			if changed[addr] || p.Prior == nil || p.Prior.Pools[addr] == nil || !p.Options.Selects(addr) {
				continue
			}
			sp := p.Prior.Pools[addr]
			rc := identify(addr)
			rc.Change = Change{
				Actions: []string{"no-op"}, Before: sp.Spec, After: d.Spec,
				BeforeSensitive: sensitiveShape(sensitivePaths(d.Sensitive, sp.Spec)),
				AfterSensitive:  sensitiveShape(d.Sensitive),
			}
			noops = append(noops, rc)
		}
		doc.ResourceChanges = append(doc.ResourceChanges, noops...)
		slices.SortStableFunc(doc.ResourceChanges, func(a, b ResourceChange) int {
			return plan.CompareAddr(a.Address, b.Address)
		})
	}
	for _, d := range p.Drift {
		id := identify(d.Addr)
		doc.ResourceDrift = append(doc.ResourceDrift, ResourceDrift{
			Address: id.Address, Mode: id.Mode, Type: id.Type, Name: id.Name, Index: id.Index,
			Replica: id.Replica, Status: d.Status, Reason: d.Reason, Cause: d.Cause,
		})
	}
	return doc
}

// identify fills the address fields of a resource change.
func identify(addr string) ResourceChange {
	rc := ResourceChange{Address: addr, Mode: "managed", Type: "pool"}
	a, err := plan.ParseAddr(addr)
	if err != nil {
		rc.Name = addr
		return rc
	}
	rc.Name = a.Name
	switch {
	case a.HasKey:
		rc.Index = a.Key
	case a.HasIndex:
		rc.Index = a.Index
	}
	rc.Replica = a.Replica
	return rc
}

func resourceChange(c *plan.Change) ResourceChange {
	rc := identify(c.Addr)
	rc.ActionReason = string(c.Reason)
	rc.ActionDetail = c.Detail
	rc.Replicas = c.Replicas
	if d := c.Downtime(); d != nil {
		rc.Downtime = &Downtime{Kind: d.Kind, EstimateSeconds: d.Estimate.Seconds(), LastStartSeconds: d.LastStart.Seconds(), LastStopSeconds: d.LastStop.Seconds(), Detail: d.Detail}
	}
	var before, after *state.Spec
	var afterSensitive []string
	if c.Before != nil {
		before = c.Before.Spec
	}
	if c.After != nil {
		after = c.After.Spec
		afterSensitive = c.After.Sensitive
	}
	rc.Change = Change{
		Actions:         actions(c.Action),
		Before:          before,
		After:           after,
		BeforeSensitive: sensitiveShape(sensitivePaths(afterSensitive, before)),
		AfterSensitive:  sensitiveShape(afterSensitive),
	}
	if c.Action == plan.Delete {
		rc.Change.After = nil
		rc.Change.AfterSensitive = false
	}
	if c.Action == plan.Create {
		rc.Change.BeforeSensitive = false
	}
	for _, f := range c.ForcedBy {
		rc.Change.ReplacePaths = append(rc.Change.ReplacePaths, splitPath(f))
	}
	return rc
}

func actions(a plan.Action) []string {
	switch a {
	case plan.Create:
		return []string{"create"}
	case plan.Update:
		return []string{"update"}
	case plan.CreateThenDelete:
		return []string{"create", "delete"}
	case plan.DeleteThenCreate:
		return []string{"delete", "create"}
	case plan.Delete:
		return []string{"delete"}
	case plan.Restart:
		return []string{"restart"}
	}
	return []string{"no-op"}
}

// sensitivePaths lists the sensitive paths of a recorded spec: those the
// configuration marks sensitive, plus any attribute holding a hash.
func sensitivePaths(known []string, s *state.Spec) []string {
	if s == nil {
		return nil
	}
	out := slices.Clone(known)
	for _, a := range plan.SpecAttrs(s) {
		if plan.IsRedacted(a.Value) || isRedactedList(a.Value) {
			out = append(out, a.Path)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func isRedactedList(v any) bool {
	if l, ok := v.([]string); ok {
		return slices.ContainsFunc(l, func(s string) bool { return plan.IsRedacted(s) })
	}
	if raw, ok := v.(json.RawMessage); ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return plan.IsRedacted(s)
		}
		return strings.Contains(string(raw), `"sha256:`)
	}
	return false
}

// sensitiveShape builds Terraform's before_sensitive/after_sensitive value:
// an object mirroring the spec with true at every sensitive attribute, or
// false when there is none.
func sensitiveShape(paths []string) any {
	if len(paths) == 0 {
		return false
	}
	root := map[string]any{}
	for _, p := range paths {
		segs := splitPath(p)
		if segs[0] != "env" && segs[0] != "labels" && segs[0] != "engine_version" && len(segs) > 1 && !isPoolBlock(segs[0]) {
			// A provider attribute: the spec keeps the block under "provider".
			segs = append([]string{"provider"}, segs[1:]...)
		}
		m := root
		for _, s := range segs[:len(segs)-1] {
			next, ok := m[s].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[s] = next
			}
			m = next
		}
		m[segs[len(segs)-1]] = true
	}
	return root
}

func isPoolBlock(s string) bool {
	switch s {
	case "model", "health", "restart", "drain", "update":
		return true
	}
	return false
}

// splitPath splits a dotted attribute path into its steps; a map key
// (env.A.B) stays one step.
func splitPath(p string) []string {
	if k, ok := strings.CutPrefix(p, "env."); ok {
		return []string{"env", k}
	}
	if k, ok := strings.CutPrefix(p, "labels."); ok {
		return []string{"labels", k}
	}
	return strings.Split(p, ".")
}
