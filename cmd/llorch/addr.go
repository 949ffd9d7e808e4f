package main

import "github.com/llorch/llorch/plan"

// argAddr parses an address given on the command line with plan's grammar
// (the one state and config use), so pool.embed["a/b"]/r0 names replica
// r0 of the instance "a/b", and says what is wrong with one it cannot read.
func (m *meta) argAddr(cmd, s string, replica bool) (plan.Addr, bool) {
	a, err := plan.ParseAddr(s)
	if err != nil {
		m.errorf("Invalid address", "%s. Write a pool address like pool.chat or pool.embed[\"bge\"], and a replica like pool.chat/r0; run \"llorch state list\" to see them.", err)
		return a, false
	}
	if replica && !a.IsReplica() {
		m.errorf("Missing replica address", "llorch %s takes one replica address, like %s/r0; %s is a pool. Run \"llorch state list\" to see the replicas.", cmd, s, s)
		return a, false
	}
	return a, true
}
