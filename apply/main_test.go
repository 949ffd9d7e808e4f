package apply_test

import (
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// A stand-in process for stop tests: it only waits to be killed.
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
