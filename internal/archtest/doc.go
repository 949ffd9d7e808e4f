// Package archtest holds one test: it parses every Go file of the module
// and fails when an import breaks the dependency rules (cmd → apply →
// {plan, providers, supervisor} → {config, state}), naming the file, line
// and import. It has no code of its own: the checker lives in the test,
// and is itself tested on small fake trees in testdata.
//
// It reads import clauses with go/parser rather than `go list -deps`, so it
// needs no go command, sees every file whatever its build tags, and can
// tell a test file's imports from the package's.
package archtest
