package supervisor

import (
	"slices"
	"testing"
)

func TestEnvironKeepsOnlyTheDocumentedVariables(t *testing.T) {
	env := []string{
		"PATH=/usr/bin", "HOME=/root", "LC_ALL=C", "LANG=en_US.UTF-8", "TZ=UTC", "LD_LIBRARY_PATH=/usr/local/cuda/lib64",
		"RUNNER_TRACKING_ID=github_1", "AWS_SECRET_ACCESS_KEY=x", "LLORCH_VAR_api_key=s3cret", "LLORCH_LOG=debug",
		"LLORCH_LOG_PATH=/tmp/l", "GORACE=halt_on_error=1", "PATHOLOGICAL=1", "noequals",
	}
	wantEngine := []string{"PATH=/usr/bin", "HOME=/root", "LC_ALL=C", "LANG=en_US.UTF-8", "TZ=UTC", "LD_LIBRARY_PATH=/usr/local/cuda/lib64"}
	if got := EngineEnviron(env); !slices.Equal(got, wantEngine) {
		t.Errorf("EngineEnviron = %q\nwant %q", got, wantEngine)
	}
	wantSupervisor := append(slices.Clone(wantEngine), "LLORCH_LOG=debug", "GORACE=halt_on_error=1")
	if got := SupervisorEnviron(env); !slices.Equal(got, wantSupervisor) {
		t.Errorf("SupervisorEnviron = %q\nwant %q", got, wantSupervisor)
	}
}
