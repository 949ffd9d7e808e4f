package testgguf_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/llorch/llorch/internal/testgguf"
	"github.com/llorch/llorch/providers/sdk/gguf"
)

// The generated files read back as what their Model says.
func TestModelsReadBack(t *testing.T) {
	tests := []struct {
		name  string
		model testgguf.Model
		want  gguf.Metadata
	}{
		{"tiny llama", testgguf.TinyLlama(), gguf.Metadata{Version: 3, Architecture: "llama", Name: "tiny-random-llama",
			FileType: 1, Quantization: "F16", ContextLength: 256,
			Parameters:  2*64*32000 + 2*(4*64*64+3*64*128+2*64) + 64,
			TensorCount: 21, KVCount: 23}},
		{"small", testgguf.Small(), gguf.Metadata{Version: 3, Architecture: "llama", Name: "tiny-llama-small",
			FileType: 1, Quantization: "F16", ContextLength: 256,
			Parameters:  2*64*300 + 2*(4*64*64+3*64*128+2*64) + 64,
			TensorCount: 21, KVCount: 23}},
		{"another architecture, context and shape", testgguf.Model{Architecture: "qwen2", ContextLength: 32768, VocabSize: 10, Blocks: 1, Embedding: 8, FeedForward: 16, Heads: 2},
			gguf.Metadata{Version: 3, Architecture: "qwen2", Name: "tiny-random-llama", FileType: 1, Quantization: "F16",
				ContextLength: 32768, Parameters: 2*8*10 + (4*8*8 + 3*8*16 + 2*8) + 8, TensorCount: 12, KVCount: 23}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.model.Bytes()
			md, err := gguf.Read(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.HeaderSize = tc.model.HeaderSize()
			if *md != tc.want {
				t.Errorf("Read =\n %+v\nwant\n %+v", *md, tc.want)
			}
			if got := tc.model.Parameters(); got != tc.want.Parameters {
				t.Errorf("Parameters() = %d, want %d", got, tc.want.Parameters)
			}
			if got := tc.model.TensorCount(); uint64(got) != tc.want.TensorCount {
				t.Errorf("TensorCount() = %d, want %d", got, tc.want.TensorCount)
			}
		})
	}
}

// TinyLlama is byte for byte as long as tiny-random-llama.gguf, and reads
// as the same metadata, when LLORCH_TEST_TINY_LLAMA names that file.
func TestTinyLlamaMatchesTheRealFile(t *testing.T) {
	real := os.Getenv("LLORCH_TEST_TINY_LLAMA")
	if real == "" {
		t.Skip("LLORCH_TEST_TINY_LLAMA does not name the real tiny-llama.gguf; the generated one is checked by TestModelsReadBack")
	}
	data, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	want, err := gguf.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	gen := testgguf.TinyLlama().Bytes()
	got, err := gguf.Read(bytes.NewReader(gen))
	if err != nil {
		t.Fatal(err)
	}
	// The token texts differ, so the headers differ in length; the
	// tensor data that follows them (aligned to 32 bytes) must not.
	genData, realData := len(gen)-int(align32(got.HeaderSize)), len(data)-int(align32(want.HeaderSize))
	got.HeaderSize, want.HeaderSize = 0, 0
	if *got != *want {
		t.Errorf("generated metadata\n %+v\nreal\n %+v", *got, *want)
	}
	if genData != realData {
		t.Errorf("generated tensor data is %d bytes, the real file's %d", genData, realData)
	}
}

func align32(n int64) int64 { return (n + 31) / 32 * 32 }

func TestBytesAreACopy(t *testing.T) {
	a := testgguf.Small().Bytes()
	a[0] = 'X'
	if b := testgguf.Small().Bytes(); b[0] != 'G' {
		t.Error("Bytes shares its buffer between calls")
	}
	p := testgguf.File(t, testgguf.Small(), "m.gguf")
	if _, err := gguf.ReadFile(p); err != nil {
		t.Errorf("File wrote an unreadable model: %v", err)
	}
}

func TestWriteHeaderOnly(t *testing.T) {
	m := testgguf.Llama70B()
	path := testgguf.HeaderOnlyFile(t, m, "70b.gguf")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The header, padded to the alignment, then the data the tensors claim.
	want := (uint64(m.HeaderSize())+31)/32*32 + uint64(m.DataSize())
	if uint64(fi.Size()) != want {
		t.Errorf("size = %d, want %d", fi.Size(), want)
	}
	if fi.Size() < 130e9 {
		t.Errorf("a 70B F16 file claims %d bytes, want about 138 GB", fi.Size())
	}
	// The header is the one a full file starts with (same keys, offsets).
	small := testgguf.Small()
	p := testgguf.HeaderOnlyFile(t, small, "small.gguf")
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	full := small.Bytes()
	if len(got) != len(full) || !bytes.Equal(got[:small.HeaderSize()], full[:small.HeaderSize()]) {
		t.Errorf("header-only file: %d bytes, header equal %v; want %d bytes and the same header",
			len(got), bytes.Equal(got[:small.HeaderSize()], full[:small.HeaderSize()]), len(full))
	}
}
