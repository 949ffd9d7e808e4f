package stage

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llorch/llorch/providers"
)

// BenchmarkDownload downloads a 64 MiB GGUF file from a local server:
// transfer, sha256 while writing, fsync, GGUF check and rename.
func BenchmarkDownload(b *testing.B) {
	data := append(small(4096), make([]byte, 64<<20)...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "model.gguf", time.Unix(1700000000, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	st := &Stager{Getenv: getenv([]string{"HF_ENDPOINT=" + srv.URL}), Check: checkGGUF}
	ref, err := ParseRef(hfRef, "/")
	if err != nil {
		b.Fatal(err)
	}
	src := st.downloadSource(ref)
	dest := filepath.Join(b.TempDir(), "model.gguf")
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := st.fetch(context.Background(), src, dest, "", func(providers.Event) {}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(dest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
