package plan

import (
	"testing"

	"github.com/llorch/llorch/state"
)

// A mistyped -target or -replace names the address meant, keeping the
// replica part, and the flag as it would be written.
func TestMistypedAddressesSuggestTheNearestPool(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		wantDetail string
	}{
		{
			name:       "-target pool",
			opts:       Options{Targets: []string{"pool.chta"}},
			wantDetail: "-target=pool.chta matches no pool in the configuration or the state. Did you mean -target=pool.chat?",
		},
		{
			name:       "-target replica",
			opts:       Options{Targets: []string{"pool.chta/r1"}},
			wantDetail: "-target=pool.chta/r1 matches no pool in the configuration or the state. Did you mean -target=pool.chat/r1?",
		},
		{
			name:       "-target of a pool only in state",
			opts:       Options{Targets: []string{"pool.olf"}},
			wantDetail: "-target=pool.olf matches no pool in the configuration or the state. Did you mean -target=pool.old?",
		},
		{
			name:       "-replace instance key",
			opts:       Options{Replace: []string{`pool.embed["bg"]`}},
			wantDetail: `-replace=pool.embed["bg"] matches no pool in the configuration. Did you mean -replace=pool.embed["bge"]?`,
		},
		{
			name:       "-replace of a pool only in state is not suggested",
			opts:       Options{Replace: []string{"pool.olf"}},
			wantDetail: "-replace=pool.olf matches no pool in the configuration.",
		},
		{
			name:       "nothing near",
			opts:       Options{Targets: []string{"pool.zzzzzz"}},
			wantDetail: "-target=pool.zzzzzz matches no pool in the configuration or the state.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{t: t, prior: map[string]*state.Pool{}}
			w.both("pool.chat", nil, nil)
			w.configured(`pool.embed["bge"]`, nil, nil)
			w.applied("pool.old", nil)
			_, diags := Diff(w.desired, stateWith(w.prior), nil, tc.opts)
			if len(diags) != 1 {
				t.Fatalf("want one diagnostic, got %d: %v", len(diags), diags)
			}
			if got := diags[0].Detail; got != tc.wantDetail {
				t.Errorf("detail = %q\nwant     %q", got, tc.wantDetail)
			}
		})
	}
}
