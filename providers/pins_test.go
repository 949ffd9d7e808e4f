package providers

import (
	"reflect"
	"testing"
)

func TestPinsMerge(t *testing.T) {
	a, b := EnginePin{SHA256: "aaaaaaaaaaaaaaaa", Version: "v1"}, EnginePin{SHA256: "bbbbbbbbbbbbbbbb", Version: "v2"}
	m := ModelPin{SHA256: "cccccccccccccccc", Size: 5}
	found := Pins{Engines: map[string]EnginePin{"llamacpp": b}, Models: map[string]ModelPin{"file:m.gguf": m}}
	tests := []struct {
		name       string
		have       Pins
		mode       LockMode
		want       Pins
		wantPinned []string
	}{
		{name: "new ones are pinned", mode: LockPin, want: found,
			wantPinned: []string{"engine llamacpp (sha256 bbbbbbbbbbbb, v2)", "model file:m.gguf (sha256 cccccccccccc)"}},
		{name: "readonly pins nothing", mode: LockReadonly},
		{name: "a changed one stays pinned as it was", have: Pins{Engines: map[string]EnginePin{"llamacpp": a}}, mode: LockPin,
			want:       Pins{Engines: map[string]EnginePin{"llamacpp": a}, Models: map[string]ModelPin{"file:m.gguf": m}},
			wantPinned: []string{"model file:m.gguf (sha256 cccccccccccc)"}},
		{name: "upgrade pins a changed one", have: Pins{Engines: map[string]EnginePin{"llamacpp": a}}, mode: LockUpgrade, want: found,
			wantPinned: []string{"engine llamacpp (sha256 bbbbbbbbbbbb, v2)", "model file:m.gguf (sha256 cccccccccccc)"}},
		{name: "the same pins say nothing", have: found, mode: LockUpgrade, want: found},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.have
			pinned := p.Merge(found, tc.mode)
			if !reflect.DeepEqual(pinned, tc.wantPinned) {
				t.Errorf("pinned %q, want %q", pinned, tc.wantPinned)
			}
			if len(tc.want.Engines)+len(tc.want.Models) > 0 && !reflect.DeepEqual(p, tc.want) {
				t.Errorf("pins %+v, want %+v", p, tc.want)
			}
		})
	}
}
