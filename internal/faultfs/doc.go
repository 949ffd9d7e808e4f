// Package faultfs wraps an afero.Fs so that chosen calls fail: the Nth
// Rename, OpenFile (or Create), Open, File.Sync or File.Write. Tests use it to
// prove that a multi-step write is never half done, by failing each step in
// turn and checking what is left on the filesystem.
//
// It is a test seam and lives outside _test.go files only so that several
// packages can share it.
package faultfs
