// Package plantest builds configuration values (pools, provider blocks,
// evaluation contexts holding sensitive variables) for tests of plan,
// render, planfile and apply without loading files. It is intended for use
// only in test code.
package plantest
