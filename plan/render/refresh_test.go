package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/llorch/llorch/plan"
)

// "No changes" says what was compared: with -refresh=false the running
// replicas were not looked at, and the message must not claim they were.
func TestNoChangesSaysWhetherReplicasWereChecked(t *testing.T) {
	tests := []struct {
		name    string
		refresh bool
		want    string
	}{
		{"refreshed", true, "llorch has compared your pools against the configuration and the running replicas and found no differences, so no changes are needed.\n"},
		{"not refreshed", false, "llorch has compared the state against the configuration and found no differences. The running replicas were not checked (-refresh=false).\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := &plan.Plan{Options: plan.Options{Refresh: tc.refresh}}
			if err := Human(&buf, p, Options{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), "No changes. Your pools match the configuration.") || !strings.HasSuffix(buf.String(), tc.want) {
				t.Errorf("output:\n%s\nwant it to end with:\n%s", buf.String(), tc.want)
			}
		})
	}
}
