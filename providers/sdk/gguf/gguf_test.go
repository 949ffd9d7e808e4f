package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llorch/llorch/internal/testgguf"
)

// tinyLlama writes a generated model of tiny-random-llama's shape (a
// 32000-token vocabulary, 21 tensors) and returns its path.
func tinyLlama(t testing.TB) string {
	t.Helper()
	return testgguf.File(t, testgguf.TinyLlama(), "tinyllama-generated.gguf")
}

// builder writes synthetic GGUF files.
type builder struct{ bytes.Buffer }

func (b *builder) u32(v uint32) { _ = binary.Write(&b.Buffer, binary.LittleEndian, v) }
func (b *builder) u64(v uint64) { _ = binary.Write(&b.Buffer, binary.LittleEndian, v) }
func (b *builder) str(s string) { b.u64(uint64(len(s))); b.WriteString(s) }

func (b *builder) header(version uint32, tensors, kvs uint64) *builder {
	b.WriteString("GGUF")
	b.u32(version)
	b.u64(tensors)
	b.u64(kvs)
	return b
}

func (b *builder) kvString(k, v string) *builder { b.str(k); b.u32(typeString); b.str(v); return b }
func (b *builder) kvU32(k string, v uint32) *builder {
	b.str(k)
	b.u32(typeUint32)
	b.u32(v)
	return b
}

func (b *builder) kvI32(k string, v int32) *builder {
	b.str(k)
	b.u32(typeInt32)
	b.u32(uint32(v))
	return b
}

func (b *builder) kvStrings(k string, vs ...string) *builder {
	b.str(k)
	b.u32(typeArray)
	b.u32(typeString)
	b.u64(uint64(len(vs)))
	for _, v := range vs {
		b.str(v)
	}
	return b
}

func (b *builder) tensor(name string, typ uint32, dims ...uint64) *builder {
	b.str(name)
	b.u32(uint32(len(dims)))
	for _, d := range dims {
		b.u64(d)
	}
	b.u32(typ)
	b.u64(0)
	return b
}

func TestReadFileTinyLlama(t *testing.T) {
	md, err := ReadFile(tinyLlama(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Metadata{
		Version:       3,
		Architecture:  "llama",
		Name:          "tiny-random-llama",
		FileType:      1,
		Quantization:  "F16",
		ContextLength: 256,
		// token_embd and output (64x32000 each) + 2 blocks of
		// 4 attention (64x64) + 3 ffn (64x128) + 2 norms (64) + output_norm.
		Parameters:  2*64*32000 + 2*(4*64*64+3*64*128+2*64) + 64,
		TensorCount: 21,
		KVCount:     23,
		// The reader stops where the tensor infos end, before the data.
		HeaderSize: testgguf.TinyLlama().HeaderSize(),
	}
	if *md != want {
		t.Errorf("ReadFile(generated TinyLlama) =\n %+v\nwant\n %+v", *md, want)
	}
}

func TestReadSyntheticMetadata(t *testing.T) {
	tests := []struct {
		name string
		file []byte
		want Metadata
	}{
		{
			name: "quantization comes from general.file_type",
			file: new(builder).header(3, 1, 4).
				kvString("general.architecture", "qwen2").
				kvU32("general.file_type", 15).
				kvU32("qwen2.context_length", 32768).
				kvStrings("tokenizer.ggml.tokens", "a", "b", "c").
				tensor("blk.0.w", 12, 256, 4).Bytes(),
			want: Metadata{Version: 3, Architecture: "qwen2", FileType: 15, Quantization: "Q4_K_M",
				ContextLength: 32768, Parameters: 1024, TensorCount: 1, KVCount: 4},
		},
		{
			name: "version 2 files are read",
			file: new(builder).header(2, 0, 1).kvString("general.architecture", "llama").Bytes(),
			want: Metadata{Version: 2, Architecture: "llama", FileType: -1, TensorCount: 0, KVCount: 1},
		},
		{
			name: "without general.file_type the dominant tensor type names the quantization",
			file: new(builder).header(3, 3, 1).
				kvString("general.architecture", "llama").
				tensor("norm", 0, 64).
				tensor("w1", 14, 256, 256).
				tensor("w2", 12, 256, 128).Bytes(),
			want: Metadata{Version: 3, Architecture: "llama", FileType: -1, Quantization: "Q6_K",
				Parameters: 64 + 256*256 + 256*128, TensorCount: 3, KVCount: 1},
		},
		{
			name: "an unknown file type falls back to the dominant tensor type",
			file: new(builder).header(3, 1, 2).
				kvString("general.architecture", "llama").
				kvU32("general.file_type", 999).
				tensor("w", 8, 32, 32).Bytes(),
			want: Metadata{Version: 3, Architecture: "llama", FileType: 999, Quantization: "Q8_0",
				Parameters: 1024, TensorCount: 1, KVCount: 2},
		},
		{
			name: "a guessed file type keeps its name",
			file: new(builder).header(3, 0, 1).kvI32("general.file_type", 1024+18).Bytes(),
			want: Metadata{Version: 3, FileType: 1024 + 18, Quantization: "Q6_K", KVCount: 1},
		},
		{
			name: "another architecture's context length is ignored",
			file: new(builder).header(3, 0, 3).
				kvU32("bert.context_length", 512).
				kvString("general.architecture", "llama").
				kvU32("llama.context_length", 4096).Bytes(),
			want: Metadata{Version: 3, Architecture: "llama", FileType: -1, ContextLength: 4096, KVCount: 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md, err := Read(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.HeaderSize = int64(len(tc.file))
			if *md != tc.want {
				t.Errorf("Read =\n %+v\nwant\n %+v", *md, tc.want)
			}
		})
	}
}

func TestReadRejectsBadFiles(t *testing.T) {
	valid := new(builder).header(3, 1, 2).
		kvString("general.architecture", "llama").
		kvStrings("tokenizer.ggml.tokens", "hello", "world").
		tensor("w", 1, 8, 8).Bytes()

	tests := []struct {
		name    string
		file    []byte
		wantErr error
		wantMsg string
	}{
		{"an empty file is not GGUF", nil, ErrNotGGUF, "not a GGUF file: the file is empty"},
		{"a two-byte file is not GGUF", []byte("GG"), ErrNotGGUF, "the file is 2 bytes long, shorter than a GGUF header"},
		{"a zip file is not GGUF", []byte("PK\x03\x04rest of a zip"), ErrNotGGUF, `it starts with "PK\x03\x04", not "GGUF"`},
		{"an HTML error page is not GGUF", []byte("<!DOCTYPE html>"), ErrNotGGUF, `it starts with "<!DO"`},
		{"version 1 is unsupported", new(builder).header(1, 0, 0).Bytes(), ErrUnsupportedVersion,
			"unsupported GGUF version: version 1 (llama.cpp reads versions 2 and 3)"},
		{"version 4 is unsupported", new(builder).header(4, 0, 0).Bytes(), ErrUnsupportedVersion, "version 4"},
		{"big-endian files are named", []byte("GGUF\x00\x00\x00\x03"), ErrUnsupportedVersion, "big-endian GGUF version 3"},
		{"a header cut short is truncated", valid[:10], ErrTruncated, "truncated GGUF file: it ends at byte 10, inside the header"},
		{"a key/value cut short is truncated", valid[:40], ErrTruncated, "inside key/value 1 of 2"},
		{"a tokenizer array cut short is truncated", valid[:len(valid)-50], ErrTruncated, "inside key/value 2 of 2"},
		{"tensor infos cut short are truncated", valid[:len(valid)-3], ErrTruncated, "inside tensor info 1 of 1"},
		{"an absurd key length is corrupt", func() []byte {
			b := new(builder).header(3, 0, 1)
			b.u64(1 << 40)
			return b.Bytes()
		}(), ErrCorrupt, "corrupt GGUF file: key of 1099511627776 bytes at byte 24"},
		{"an unknown value type is corrupt", func() []byte {
			b := new(builder).header(3, 0, 1)
			b.str("x")
			b.u32(77)
			return b.Bytes()
		}(), ErrCorrupt, `unknown value type 77 at byte 33 (key "x")`},
		{"too many tensor dimensions is corrupt", func() []byte {
			b := new(builder).header(3, 1, 0)
			b.str("t")
			b.u32(7)
			return b.Bytes()
		}(), ErrCorrupt, `tensor "t" has 7 dimensions`},
		{"an impossibly large array is corrupt", func() []byte {
			b := new(builder).header(3, 0, 1)
			b.str("a")
			b.u32(typeArray)
			b.u32(typeUint64)
			b.u64(1 << 62)
			return b.Bytes()
		}(), ErrCorrupt, "array of 4611686018427387904 elements"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.file))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Read error = %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Read error = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

// Every prefix of a tiny llama's metadata is reported as truncated, never
// accepted and never a panic.
func TestReadEveryTruncationOfTinyLlama(t *testing.T) {
	data := testgguf.TinyLlama().Bytes()
	md, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// Every cut in the header and first keys, cuts through the tensor
	// infos (every 17th byte) and 40 cuts through the tokenizer arrays.
	end := int(md.HeaderSize)
	var cuts []int
	for n := 8; n < 1024; n++ {
		cuts = append(cuts, n)
	}
	for n := 1024; n < end-1024; n += (end - 2048) / 40 {
		cuts = append(cuts, n)
	}
	for n := end - 1024; n < end; n += 17 {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		if _, err := Read(bytes.NewReader(data[:n])); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Read(first %d bytes) error = %v, want ErrTruncated", n, err)
		}
	}
}

func TestReadFileNamesThePath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(p, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": not a GGUF file") {
		t.Errorf("ReadFile error = %v, want it to start with the path and %q", err, "not a GGUF file")
	}
	_, err = ReadFile(filepath.Join(t.TempDir(), "missing.gguf"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) error = %v, want os.ErrNotExist", err)
	}
}

func TestTypeNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{FileTypeName(15), "Q4_K_M"},
		{FileTypeName(0), "F32"},
		{FileTypeName(32), "BF16"},
		{FileTypeName(5), ""},
		{TensorTypeName(12), "Q4_K"},
		{TensorTypeName(30), "BF16"},
		{TensorTypeName(200), "TYPE_200"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
