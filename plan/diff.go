package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// Diff compares the desired pools with the pools recorded in prior and with
// what refresh observed of their replicas, and returns the changes that make
// them match. It is pure: no I/O, no providers, no clock; the same inputs
// always give the same Plan, with Changes and Drift sorted by address.
//
// The Plan refers to prior (Prior, each Change's Before) rather than copying
// it, so prior must not be modified afterwards (Planner.Plan passes on the
// same promise from its caller). Diagnostics are errors about opts (an address that matches
// nothing); the Plan is nil when there are any.
func Diff(desired []*Desired, prior *state.State, observed Observations, opts Options) (*Plan, hcl.Diagnostics) {
	if prior == nil {
		prior = &state.State{}
	}
	p := &Plan{
		FormatVersion: FormatVersion,
		Lineage:       prior.Lineage,
		Serial:        prior.Serial,
		Destroy:       opts.Destroy,
		Prior:         prior,
		Desired:       make(map[string]*Desired, len(desired)),
		Options: Options{
			Targets: slices.Clone(opts.Targets),
			Replace: slices.Clone(opts.Replace),
			Destroy: opts.Destroy,
			Refresh: opts.Refresh,
		},
		Observations: observed,
	}
	for _, d := range desired {
		p.Desired[d.Addr] = d
	}
	sel, diags := selection(opts, desired, prior)
	if diags.HasErrors() {
		return nil, diags
	}

	if opts.Destroy {
		for _, addr := range prior.Addrs() {
			p.Changes = append(p.Changes, deleteChange(addr, prior.Pools[addr], DeleteBecauseDestroy))
		}
	} else {
		for _, d := range desired {
			sp := prior.Pools[d.Addr]
			if sp == nil {
				p.Changes = append(p.Changes, createChange(d))
				continue
			}
			changes, drift := diffPool(d, sp, observed, sel)
			p.Changes = append(p.Changes, changes...)
			p.Drift = append(p.Drift, drift...)
		}
		for addr, sp := range prior.Pools { // sorted with the rest below
			if p.Desired[addr] == nil {
				p.Changes = append(p.Changes, deleteChange(addr, sp, DeleteBecauseNoConfig))
			}
		}
	}

	if len(sel.targets) > 0 {
		p.Changes = slices.DeleteFunc(p.Changes, func(c *Change) bool { return !sel.targeted(c.Addr) })
		p.Drift = slices.DeleteFunc(p.Drift, func(d *Drift) bool { return !sel.targeted(d.Addr) })
	}
	slices.SortStableFunc(p.Changes, func(a, b *Change) int { return CompareAddr(a.Addr, b.Addr) })
	slices.SortStableFunc(p.Drift, func(a, b *Drift) int { return CompareAddr(a.Addr, b.Addr) })
	return p, nil
}

func createChange(d *Desired) *Change {
	return &Change{
		Addr:     d.Addr,
		Action:   Create,
		After:    d,
		Attrs:    presentAttrs(flattenSpec(d.Spec, d.ProviderSchema), true, d.Sensitive),
		Replicas: replicaIDs(d.Spec.Replicas),
	}
}

func deleteChange(addr string, sp *state.Pool, reason Reason) *Change {
	ids := make([]string, 0, len(sp.Replicas))
	for _, r := range sp.Replicas {
		ids = append(ids, r.ID)
	}
	slices.SortFunc(ids, compareReplicaID)
	return &Change{
		Addr:     addr,
		Action:   Delete,
		Reason:   reason,
		Before:   sp,
		Attrs:    presentAttrs(flattenSpec(sp.Spec, nil), false, nil),
		Replicas: ids,
	}
}

// presentAttrs lists the attributes that have a value, as the After (or
// Before) side of a create (or delete).
func presentAttrs(vals []attrVal, after bool, sensitive []string) []AttrDiff {
	out := make([]AttrDiff, 0, len(vals))
	for _, a := range vals {
		if a.val == nil {
			continue
		}
		d := AttrDiff{Path: a.path, Sensitive: containsPath(sensitive, a.path) || isRedactedValue(a.val)}
		if after {
			d.After = a.val
		} else {
			d.Before = a.val
		}
		out = append(out, d)
	}
	return out
}

// sameAttrs lists d's attributes as unchanged, for a change whose spec
// hash matched the recorded one.
func sameAttrs(d *Desired) []AttrDiff {
	out := presentAttrs(flattenSpec(d.Spec, d.ProviderSchema), true, d.Sensitive)
	for i := range out {
		out[i].Before = out[i].After
	}
	return out
}

// contentDrift says why a replica is drift when refresh saw its engine
// binary or model file change on disk (size or mtime): "" when the file
// holds the same bytes as when the replica started (a touch, a `git
// checkout`, an identical rebuild), as the provider's digest now and the
// recorded one show. Without both digests the change on disk is all there
// is to go by.
func contentDrift(d *Desired, sp *state.Pool) (binary, model string) {
	var pr state.Prepared
	if sp.Prepared != nil {
		pr = *sp.Prepared
	}
	var nowBinary, nowModel string
	if d.Planned != nil {
		nowBinary = d.Planned.BinarySHA256
		if d.Planned.Model != nil && d.Planned.Model.Path == pr.ModelPath {
			nowModel = d.Planned.Model.SHA256
		}
	}
	return fileDrift("engine binary", d.Scrub(pr.BinaryPath), pr.BinarySHA256, nowBinary),
		fileDrift("model file", d.Scrub(pr.ModelPath), pr.ModelSHA256, nowModel)
}

func fileDrift(what, path, before, now string) string {
	switch {
	case before == "" || now == "":
		return "the " + what + " changed on disk after the replica started"
	case before == now:
		return ""
	}
	return fmt.Sprintf("the %s %s changed on disk after the replica started (sha256 %s → %s)",
		what, path, ShortDigest(before), ShortDigest(now))
}

// ShortDigest is the form of a sha256 digest the plan shows: its first 12
// hex digits, as `docker images` shortens image ids.
func ShortDigest(sum string) string {
	sum = strings.TrimPrefix(sum, "sha256:")
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// diffPool compares one pool that is both configured and recorded.
func diffPool(d *Desired, sp *state.Pool, observed Observations, sel *selected) ([]*Change, []*Drift) {
	var attrs, unchanged []AttrDiff
	var forced []string
	compared := sp.Spec == nil || d.SpecHash != sp.SpecHash
	if compared {
		attrs, unchanged, forced = diffAttrs(d, sp)
	}
	if ev, ok := engineVersionDiff(d, sp); ok {
		attrs = append(attrs, ev)
		forced = append(forced, ev.Path)
	}

	// One pass over the observations: files changed on disk force a
	// replacement; dead replicas are restarted unless the pool is replaced.
	var drift []*Drift
	var driftForced []string
	var dead []deadInfo
	replicas := sortedReplicas(sp)
	var binaryDrift, modelDrift string
	hashed := false
	if len(observed) > 0 {
		var buf [128]byte // keys are short; the lookup below then allocates nothing
		key := buf[:0]
		for _, r := range replicas {
			key = append(append(append(key[:0], d.Addr...), '/'), r.ID...)
			o, ok := observed[string(key)]
			if (o.BinaryChanged || o.ModelChanged) && !hashed {
				binaryDrift, modelDrift = contentDrift(d, sp)
				hashed = true
			}
			binaryChanged := o.BinaryChanged && binaryDrift != ""
			modelChanged := o.ModelChanged && modelDrift != ""
			if !ok || o.Alive && !binaryChanged && !modelChanged && o.Status != state.StatusFailed && o.Status != state.StatusStopped {
				continue // the common case: running as recorded
			}
			addr := string(key)
			if binaryChanged {
				drift = append(drift, &Drift{Addr: addr, Status: o.Status, Reason: binaryDrift})
				driftForced = appendUnique(driftForced, "binary")
			}
			if modelChanged {
				drift = append(drift, &Drift{Addr: addr, Status: o.Status, Reason: modelDrift})
				driftForced = appendUnique(driftForced, "model file")
			}
			if reason, detail, isDead := deadReplica(o, r); isDead {
				dead = append(dead, deadInfo{r.ID, addr, o.Status, reason, detail, o.Cause})
			}
		}
	}

	strategy := replaceAction(d.Spec.Update.Strategy)
	requested := sel.replacePool(d.Addr)
	if len(forced) > 0 || requested || len(driftForced) > 0 {
		reason := ReplaceBecauseDrift
		switch {
		case requested:
			reason = ReplaceByRequest
		case len(forced) > 0:
			reason = ReplaceBecauseChanged
		}
		if !compared {
			unchanged = sameAttrs(d)
		}
		ids := replicaIDs(d.Spec.Replicas)
		for _, r := range replicas {
			ids = appendUnique(ids, r.ID)
		}
		slices.SortFunc(ids, compareReplicaID)
		return []*Change{{
			Addr: d.Addr, Action: strategy, Reason: reason, Before: sp, After: d,
			Attrs: attrs, Unchanged: unchanged, ForcedBy: append(forced, driftForced...), Replicas: ids,
		}}, drift
	}

	created, deleted := replicaSetChanges(d.Spec.Replicas, replicas)
	var changes []*Change
	if len(attrs) > 0 || len(created) > 0 || len(deleted) > 0 {
		c := &Change{Addr: d.Addr, Action: Update, Before: sp, After: d, Attrs: attrs, Unchanged: unchanged,
			Replicas: append(created, deleted...)}
		if len(deleted) > 0 {
			c.Reason = DeleteBecauseCountIndex
		}
		if !compared {
			c.Unchanged = sameAttrs(d)
		}
		changes = append(changes, c)
	}

	if len(sel.replaceReplicas) > 0 {
		for _, r := range replicas {
			if !slices.Contains(deleted, r.ID) && sel.replaceReplica(d.Addr, r.ID) {
				changes = append(changes, &Change{Addr: ReplicaAddr(d.Addr, r.ID), Action: strategy, Reason: ReplaceByRequest,
					Before: sp, After: d, Replicas: []string{r.ID}})
			}
		}
	}
	isDead := func(id string) bool { return slices.ContainsFunc(dead, func(x deadInfo) bool { return x.id == id }) }
	if base := d.Spec.Port; base > 0 {
		// A fixed port stays fixed: a replica found elsewhere (its move back
		// after a replacement failed) is moved onto its configured port.
		// A dead one restarts there anyway.
		for _, r := range replicas {
			i, ok := ReplicaIndex(r.ID)
			if !ok || i >= d.Spec.Replicas || r.Port == 0 || r.Port == base+i || isDead(r.ID) || sel.replaceReplica(d.Addr, r.ID) {
				continue
			}
			changes = append(changes, &Change{Addr: ReplicaAddr(d.Addr, r.ID), Action: strategy, Reason: ReplaceBecausePortMoved,
				Detail: fmt.Sprintf("it listens on port %d; the configuration says %d", r.Port, base+i),
				Before: sp, After: d, Replicas: []string{r.ID}})
		}
	}
	for _, x := range dead {
		if slices.Contains(deleted, x.id) || sel.replaceReplica(d.Addr, x.id) {
			continue
		}
		drift = append(drift, &Drift{Addr: x.addr, Status: x.status, Reason: x.detail, Cause: x.cause})
		changes = append(changes, &Change{Addr: x.addr, Action: Restart, Reason: x.reason, Detail: x.detail,
			Before: sp, After: d, Replicas: []string{x.id}})
	}
	return changes, drift
}

// deadInfo is a replica refresh found dead.
type deadInfo struct {
	id, addr, status string
	reason           Reason
	detail           string
	cause            string
}

// replicaSetChanges compares the recorded replicas with the n wanted
// (r0..rN-1) and returns the ids to create and to delete, in order.
func replicaSetChanges(n int, recorded []*state.Replica) (created, deleted []string) {
	have := 0
	for _, r := range recorded {
		if i, ok := ReplicaIndex(r.ID); ok && i < n {
			have++
		} else {
			deleted = append(deleted, r.ID)
		}
	}
	if have == n {
		return nil, deleted // every wanted id is recorded (ids are unique)
	}
	for i := range n {
		id := ReplicaID(i)
		if !slices.ContainsFunc(recorded, func(r *state.Replica) bool { return r.ID == id }) {
			created = append(created, id)
		}
	}
	return created, deleted
}

// deadReplica decides whether an observed replica needs a restart. A
// replica that its supervisor is still bringing up, backing off or draining
// is left to the supervisor.
func deadReplica(o Observed, r *state.Replica) (Reason, string, bool) {
	switch o.Status {
	case state.StatusFailed:
		return RestartBecauseFailed, orDefault(o.Reason, "the replica failed and its circuit breaker is open"), true
	case state.StatusStopped:
		return RestartBecauseDrained, orDefault(o.Reason, "the replica was drained and stopped"), true
	case state.StatusStarting, state.StatusRestarting, state.StatusBackoff, state.StatusDraining:
		return ReasonNone, "", false
	}
	if o.Alive {
		return ReasonNone, "", false
	}
	pid := o.PID
	if pid == 0 {
		pid = r.PID
	}
	fallback := "the engine is not running"
	if pid > 0 {
		fallback = fmt.Sprintf("process %d is not running", pid)
	}
	return RestartBecauseExited, orDefault(o.Reason, fallback), true
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// engineVersionDiff reports a change of the engine version the provider
// plans against the one recorded: both known and different, or the
// provider saying in RequiresReplace that it will change before it can
// know to what.
func engineVersionDiff(d *Desired, sp *state.Pool) (AttrDiff, bool) {
	if d.Planned == nil || sp.Prepared == nil || sp.Prepared.EngineVersion == "" {
		return AttrDiff{}, false
	}
	before, after := sp.Prepared.EngineVersion, d.Planned.EngineVersion
	switch {
	case after != "" && after != before:
		return AttrDiff{Path: "engine_version", Before: before, After: after, Forces: true}, true
	case after == "" && requiresEngineVersion(d.Planned.RequiresReplace):
		return AttrDiff{Path: "engine_version", Before: before, Forces: true}, true
	}
	return AttrDiff{}, false
}

func requiresEngineVersion(paths []cty.Path) bool {
	for _, p := range paths {
		if names := pathNames(p); len(names) == 1 && names[0] == "engine_version" {
			return true
		}
	}
	return false
}

func replaceAction(strategy string) Action {
	if strategy == config.DrainFirst {
		return DeleteThenCreate
	}
	return CreateThenDelete
}

// diffAttrs compares the recorded and desired specs attribute by attribute.
func diffAttrs(d *Desired, sp *state.Pool) (changed, unchanged []AttrDiff, forced []string) {
	var beforeSchema *providers.Block
	if sp.Spec != nil && sp.Spec.Engine == d.Spec.Engine {
		beforeSchema = d.ProviderSchema
	}
	before := flattenSpec(sp.Spec, beforeSchema)
	after := flattenSpec(d.Spec, d.ProviderSchema)

	type pair struct {
		b, a       any
		hasB, hasA bool
	}
	pairs := make(map[string]*pair, len(after)+4)
	paths := make([]string, 0, len(after)+4)
	for _, a := range before {
		pairs[a.path] = &pair{b: a.val, hasB: true}
		paths = append(paths, a.path)
	}
	for _, a := range after {
		if pr, ok := pairs[a.path]; ok {
			pr.a, pr.hasA = a.val, true
			continue
		}
		pairs[a.path] = &pair{a: a.val, hasA: true}
		paths = append(paths, a.path)
	}
	slices.SortStableFunc(paths, compareAttrPath)

	provForcing := providerForcingPaths(d)
	for _, path := range paths {
		pr := pairs[path]
		sensitive := containsPath(d.Sensitive, path) || isRedactedValue(pr.b) || isRedactedValue(pr.a)
		if equalValue(pr.b, pr.a) {
			if pr.a != nil {
				unchanged = append(unchanged, AttrDiff{Path: path, Before: pr.b, After: pr.a, Sensitive: sensitive})
			}
			continue
		}
		ad := AttrDiff{Path: path, Before: pr.b, After: pr.a, Sensitive: sensitive,
			Forces: forcesReplacement(path, d.Spec.Engine, provForcing)}
		if ad.Forces {
			forced = append(forced, path)
		}
		changed = append(changed, ad)
	}
	return changed, unchanged, forced
}

// attrOrder ranks the fixed attributes for display; env (9), labels (10)
// and provider attributes (100) sort by path within their rank.
var attrOrder = map[string]int{
	"engine": 0, "replicas": 1, "model.ref": 2, "model.sha256": 3, "host": 4, "port": 5,
	"devices": 6, "ctx": 7, "flags": 8,
	"health.path": 20, "health.interval": 21, "health.start_timeout": 22, "health.live_interval": 23,
	"health.failures": 24,
	"restart.policy":  30, "restart.initial_backoff": 31, "restart.max_backoff": 32, "restart.multiplier": 33,
	"restart.jitter": 34, "restart.reset_after": 35, "restart.max_failures": 36, "restart.cooldown": 37,
	"drain.deadline": 40, "drain.kill_timeout": 41, "update.strategy": 50,
}

func attrRank(path string) int {
	if r, ok := attrOrder[path]; ok {
		return r
	}
	switch {
	case strings.HasPrefix(path, "env."):
		return 9
	case strings.HasPrefix(path, "labels."):
		return 10
	}
	return 100
}

func compareAttrPath(a, b string) int {
	if ra, rb := attrRank(a), attrRank(b); ra != rb {
		return ra - rb
	}
	return strings.Compare(a, b)
}

// poolForcing are the pool attributes whose change replaces the replicas
// (DESIGN §4); the rest (replicas, labels, health, restart, drain, update)
// change in place.
var poolForcing = map[string]bool{
	"engine": true, "model.ref": true, "model.sha256": true, "host": true, "port": true,
	"devices": true, "ctx": true, "flags": true,
}

func forcesReplacement(path, engine string, provForcing []string) bool {
	if poolForcing[path] || strings.HasPrefix(path, "env.") {
		return true
	}
	rel, ok := strings.CutPrefix(path, engine+".")
	if !ok {
		return false
	}
	for _, fp := range provForcing {
		if rel == fp || strings.HasPrefix(rel, fp+".") {
			return true
		}
	}
	return false
}

// providerForcingPaths lists, relative to the provider block, the paths
// the schema marks ForcesReplacement and those PlanPool said require
// replacement.
func providerForcingPaths(d *Desired) []string {
	var out []string
	for _, p := range d.ProviderSchema.ForcesReplacementPaths() {
		out = append(out, strings.Join(pathNames(p), "."))
	}
	if d.Planned != nil {
		for _, p := range d.Planned.RequiresReplace {
			names := pathNames(p)
			if len(names) == 0 || (len(names) == 1 && names[0] == "engine_version") {
				continue
			}
			out = append(out, strings.Join(names, "."))
		}
	}
	return out
}

func isRedactedValue(v any) bool {
	switch x := v.(type) {
	case string:
		return IsRedacted(x)
	case []string:
		return slices.ContainsFunc(x, func(s string) bool { return IsRedacted(s) })
	case json.RawMessage:
		if bytes.Contains(x, []byte(`"sha256:`)) {
			var s string
			if json.Unmarshal(x, &s) == nil {
				return IsRedacted(s)
			}
			// A list or object holding a hash: the whole value is shown as
			// sensitive.
			return true
		}
	}
	return false
}

func containsPath(sorted []string, path string) bool {
	_, ok := slices.BinarySearch(sorted, path)
	return ok
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func replicaIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = ReplicaID(i)
	}
	return ids
}

func sortedReplicas(sp *state.Pool) []*state.Replica {
	if slices.IsSortedFunc(sp.Replicas, func(a, b *state.Replica) int { return compareReplicaID(a.ID, b.ID) }) {
		return sp.Replicas
	}
	rs := slices.Clone(sp.Replicas)
	slices.SortStableFunc(rs, func(a, b *state.Replica) int { return compareReplicaID(a.ID, b.ID) })
	return rs
}

func compareReplicaID(a, b string) int {
	switch {
	case a == b:
		return 0
	case lessReplicaID(a, b):
		return -1
	default:
		return 1
	}
}
