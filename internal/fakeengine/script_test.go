package fakeengine

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScript runs the registered command the way other packages' scripts
// do, through testscript's exec.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			return nil
		},
	})
}
