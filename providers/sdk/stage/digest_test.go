package stage

import (
	"context"
	"os"
	"testing"

	"github.com/llorch/llorch/providers"
)

// The hashing progress ends at 100 %, whatever the file's size.
func TestDigestProgressEndsAtOneHundredPercent(t *testing.T) {
	path := writeFile(t, t.TempDir(), "m.gguf", make([]byte, 3<<20+17), 0o644)
	fi, _ := os.Stat(path)
	var last providers.Event
	if _, err := NewDigests("").SHA256(context.Background(), path, fi, func(ev providers.Event) { last = ev }); err != nil {
		t.Fatal(err)
	}
	if last.Total != fi.Size() || last.Current != last.Total {
		t.Errorf("last progress event %d of %d, want %d of %d", last.Current, last.Total, fi.Size(), fi.Size())
	}
}
