// Package statetest is the conformance suite of state.Store: the behaviour
// plan, apply and the CLI rely on, which every backend (state/local,
// state/etcd) must show. A backend's test calls Run with a way to open
// Stores on a fresh, empty backend.
//
// What backends rightly do differently is left to their own tests: how a
// lock outlives or dies with its holder, and so what ForceUnlock of a lock
// whose holder still runs does (an flock cannot be taken away; an etcd
// lease can be revoked).
package statetest
