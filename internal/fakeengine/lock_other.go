//go:build !unix

package fakeengine

import "os"

// lockFile does nothing where flock is missing: concurrent starts may then
// miscount, which only matters to tests that race starts on purpose.
func lockFile(*os.File) (unlock func(), err error) { return func() {}, nil }
