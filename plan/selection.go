package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/internal/didyoumean"
	"github.com/llorch/llorch/state"
)

// selected is the parsed -target and -replace addresses of a Diff.
type selected struct {
	targets         []Addr
	replacePools    []Addr // pool addresses (possibly covering instances)
	replaceReplicas []Addr // replica addresses
}

// targeted reports whether a change or drift at addr is kept under -target.
func (s *selected) targeted(addr string) bool {
	if len(s.targets) == 0 {
		return true
	}
	a, err := ParseAddr(addr)
	if err != nil {
		return false
	}
	for _, t := range s.targets {
		if t.Contains(a) {
			return true
		}
	}
	return false
}

// replacePool reports whether -replace asked for the whole pool at addr.
func (s *selected) replacePool(addr string) bool {
	if len(s.replacePools) == 0 {
		return false
	}
	a, err := ParseAddr(addr)
	if err != nil {
		return false
	}
	for _, r := range s.replacePools {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// replaceReplica reports whether -replace asked for replica id of pool.
func (s *selected) replaceReplica(pool, id string) bool {
	if len(s.replaceReplicas) == 0 {
		return false
	}
	a, err := ParseAddr(ReplicaAddr(pool, id))
	if err != nil {
		return false
	}
	for _, r := range s.replaceReplicas {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// candidate is a pool an address may name, with the replica ids it has or
// will have.
type candidate struct {
	addr Addr
	text string
	ids  []string
}

// selection parses and checks opts.Targets and opts.Replace: every address
// must name a pool of the configuration (-replace) or of the configuration
// or the state (-target).
func selection(opts Options, desired []*Desired, prior *state.State) (*selected, hcl.Diagnostics) {
	sel := &selected{}
	if len(opts.Targets) == 0 && len(opts.Replace) == 0 {
		return sel, nil
	}
	var configured, recorded []candidate
	for _, d := range desired {
		a, err := ParseAddr(d.Addr)
		if err != nil {
			continue
		}
		ids := replicaIDs(d.Spec.Replicas)
		if sp := prior.Pools[d.Addr]; sp != nil {
			for _, r := range sp.Replicas {
				ids = appendUnique(ids, r.ID)
			}
		}
		configured = append(configured, candidate{a, d.Addr, ids})
	}
	for _, addr := range prior.Addrs() {
		a, err := ParseAddr(addr)
		if err != nil {
			continue
		}
		var ids []string
		for _, r := range prior.Pools[addr].Replicas {
			ids = append(ids, r.ID)
		}
		recorded = append(recorded, candidate{a, addr, ids})
	}

	var diags hcl.Diagnostics
	for _, raw := range opts.Targets {
		a, d := matchAddr("target", raw, append(configured, recorded...), "in the configuration or the state")
		if d != nil {
			diags = append(diags, d)
			continue
		}
		sel.targets = append(sel.targets, a)
	}
	for _, raw := range opts.Replace {
		a, d := matchAddr("replace", raw, configured, "in the configuration")
		if d != nil {
			diags = append(diags, d)
			continue
		}
		if a.Replica != "" {
			sel.replaceReplicas = append(sel.replaceReplicas, a)
		} else {
			sel.replacePools = append(sel.replacePools, a)
		}
	}
	return sel, diags
}

// matchAddr parses raw (given as -flag=raw) and checks that it names one
// of cands.
func matchAddr(flag, raw string, cands []candidate, where string) (Addr, *hcl.Diagnostic) {
	a, reason := parseAddr(raw)
	if reason != "" {
		return a, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid -%s address", flag),
			Detail: fmt.Sprintf("-%s=%s is not a pool address: %s. Write pool.NAME, pool.NAME[\"KEY\"] or pool.NAME[INDEX], and add /rN for one replica (pool.chat/r1).",
				flag, raw, reason),
		}
	}
	pool := a
	pool.Replica = ""
	var poolMatch *candidate
	for i, c := range cands {
		if !pool.Contains(c.addr) {
			continue
		}
		if a.Replica != "" && !c.addr.Contains(pool) {
			continue // a replica address names one instance exactly
		}
		if a.Replica == "" || slices.Contains(c.ids, a.Replica) {
			return a, nil
		}
		if poolMatch == nil {
			poolMatch = &cands[i]
		}
	}
	if poolMatch != nil {
		has := "no replicas"
		if len(poolMatch.ids) > 0 {
			ids := slices.Clone(poolMatch.ids)
			slices.SortFunc(ids, compareReplicaID)
			has = "replicas " + strings.Join(ids, ", ")
		}
		return a, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No matching replica",
			Detail:   fmt.Sprintf("-%s=%s matches no replica: %s has %s.", flag, raw, poolMatch.text, has),
		}
	}
	return a, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "No matching pool",
		Detail:   fmt.Sprintf("-%s=%s matches no pool %s.%s", flag, raw, where, suggestAddr(flag, pool, a.Replica, cands)),
	}
}

// suggestAddr offers the candidate nearest to a mistyped pool address, as
// " Did you mean -target=pool.chat?", or "".
func suggestAddr(flag string, pool Addr, replica string, cands []candidate) string {
	names := make([]string, 0, len(cands))
	for _, c := range cands {
		names = append(names, c.text)
	}
	s := didyoumean.NameSuggestion(pool.String(), names)
	if s == "" {
		return ""
	}
	if replica != "" {
		s = ReplicaAddr(s, replica)
	}
	return fmt.Sprintf(" Did you mean -%s=%s?", flag, s)
}

// Selects reports whether the pool or replica at addr is within o.Targets
// (always true without targets), the way Diff filters changes.
func (o Options) Selects(addr string) bool {
	if len(o.Targets) == 0 {
		return true
	}
	sel := &selected{}
	for _, t := range o.Targets {
		if a, err := ParseAddr(t); err == nil {
			sel.targets = append(sel.targets, a)
		}
	}
	return sel.targeted(addr)
}
