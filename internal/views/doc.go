// Package views renders what commands have to say: diagnostics with source
// snippets, apply progress for people ("Still starting... [10s elapsed]"),
// and the -json event stream for machines. Commands decide what to show;
// views decide how.
package views
