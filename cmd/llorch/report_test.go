package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-multierror"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/plan"
)

// The "state records what was done" trailer of a failed apply appears only
// when the state was saved; a failed save says the state may be behind.
func TestApplyFailureTrailerSaysWhetherTheStateRecordsIt(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		want    string
		notWant string
	}{
		{
			name: "a change failed, the state was saved",
			err:  &apply.Error{Addr: "pool.chat/r0", Err: errors.New("engine exited")},
			want: "1 of the planned changes failed; the state records what was done and why the rest failed",
		},
		{
			name: "the state could not be saved",
			err: multierror.Append(&apply.Error{Addr: "pool.chat/r0", Err: errors.New("engine exited")},
				&apply.Error{Addr: "pool.chat/r1", Err: &apply.StateSaveError{Err: errors.New("disk full")}}),
			want:    "2 of the planned changes failed, and the state could not be saved, so it may not record all that was done",
			notWant: "the state records what was done",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			m := newMeta(strings.NewReader(""), &stdout, &stderr)
			if code := m.reportApply("apply", &plan.Plan{}, tc.err, nil); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr:\n%s\nwant it to contain %q", stderr.String(), tc.want)
			}
			if tc.notWant != "" && strings.Contains(stderr.String(), tc.notWant) {
				t.Errorf("stderr:\n%s\nsays %q", stderr.String(), tc.notWant)
			}
			if !strings.Contains(stderr.String(), "saving state: disk full") && tc.notWant != "" {
				t.Errorf("stderr does not say why the state was not saved:\n%s", stderr.String())
			}
		})
	}
}
