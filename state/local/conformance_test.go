package local_test

import (
	"path/filepath"
	"testing"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/local"
	"github.com/llorch/llorch/state/statetest"
)

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) statetest.Backend {
		root := t.TempDir()
		errored := filepath.Join(root, "errored.state.json")
		return statetest.Backend{
			Open: func(*testing.T) state.Store {
				return local.New(afero.NewOsFs(), filepath.Join(root, ".llorch"), local.Options{ErroredPath: errored, Version: "0.1.0"})
			},
			ErroredPath: errored,
		}
	})
}
