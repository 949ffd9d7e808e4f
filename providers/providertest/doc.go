// Package providertest is an in-process fake provider and resolver for
// tests of plan and apply, intended for use only in test code. The fake's
// schema has the shapes core must handle (a sensitive attribute, one that
// forces replacement, a nested block), every RPC can be given a result or
// an error through a hook, and every call is recorded.
package providertest
