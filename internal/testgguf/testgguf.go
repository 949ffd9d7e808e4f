package testgguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Model describes a GGUF file. The zero value of a field takes the
// [TinyLlama] value, so Model{ContextLength: 4096} is tiny-random-llama with
// a longer trained context.
type Model struct {
	Architecture  string // general.architecture
	Name          string // general.name
	ContextLength uint32 // <architecture>.context_length
	// VocabSize is the number of tokens: <unk>, <s>, </s>, then as many of
	// the 256 byte tokens as fit, then plain tokens. At least 3.
	VocabSize   int
	Embedding   int // <architecture>.embedding_length
	Blocks      int // <architecture>.block_count
	FeedForward int // <architecture>.feed_forward_length
	Heads       int // <architecture>.attention.head_count
	// HeadsKV is <architecture>.attention.head_count_kv: fewer than Heads
	// is grouped-query attention (Llama 2 70B has 8 for 64). 0 = Heads.
	HeadsKV int
}

// TinyLlama is the shape of tiny-random-llama.gguf: llama, F16, trained
// context 256, a 32000-token vocabulary, embedding 64, two blocks, feed
// forward 128, four heads; 23 keys and 21 tensors.
func TinyLlama() Model {
	return Model{Architecture: "llama", Name: "tiny-random-llama", ContextLength: 256,
		VocabSize: 32000, Embedding: 64, Blocks: 2, FeedForward: 128, Heads: 4}
}

// Small is TinyLlama with a 300-token vocabulary: a 250 KB file, for tests
// that need a model file and not its size.
func Small() Model {
	m := TinyLlama()
	m.Name, m.VocabSize = "tiny-llama-small", 300
	return m
}

func (m Model) withDefaults() Model {
	d := TinyLlama()
	if m.Architecture == "" {
		m.Architecture = d.Architecture
	}
	if m.Name == "" {
		m.Name = d.Name
	}
	if m.ContextLength == 0 {
		m.ContextLength = d.ContextLength
	}
	if m.VocabSize == 0 {
		m.VocabSize = d.VocabSize
	}
	if m.VocabSize < 3 {
		m.VocabSize = 3
	}
	if m.Embedding == 0 {
		m.Embedding = d.Embedding
	}
	if m.Blocks == 0 {
		m.Blocks = d.Blocks
	}
	if m.FeedForward == 0 {
		m.FeedForward = d.FeedForward
	}
	if m.Heads == 0 {
		m.Heads = d.Heads
	}
	if m.HeadsKV == 0 {
		m.HeadsKV = m.Heads
	}
	return m
}

// Llama7B, Llama13B and Llama70B have the shapes of Llama 2 7B, 13B and
// 70B (F16): write them with WriteHeaderOnly, as their data would take
// 13 to 138 GB.
func Llama7B() Model {
	return Model{Architecture: "llama", Name: "llama-2-7b-shape", ContextLength: 4096,
		VocabSize: 32000, Embedding: 4096, Blocks: 32, FeedForward: 11008, Heads: 32}
}

// Llama13B is Llama 2 13B's shape.
func Llama13B() Model {
	return Model{Architecture: "llama", Name: "llama-2-13b-shape", ContextLength: 4096,
		VocabSize: 32000, Embedding: 5120, Blocks: 40, FeedForward: 13824, Heads: 40}
}

// Llama70B is Llama 2 70B's shape, with grouped-query attention.
func Llama70B() Model {
	return Model{Architecture: "llama", Name: "llama-2-70b-shape", ContextLength: 4096,
		VocabSize: 32000, Embedding: 8192, Blocks: 80, FeedForward: 28672, Heads: 64, HeadsKV: 8}
}

// Tensor types (ggml_type) and the file type (llama_ftype) written.
const (
	typeF32     = 0
	typeF16     = 1
	fileTypeF16 = 1
	alignment   = 32 // general.alignment's default
)

type tensor struct {
	name string
	dims []uint64 // ggml order: the fastest-moving dimension first
	typ  uint32
}

func (t tensor) elems() uint64 {
	n := uint64(1)
	for _, d := range t.dims {
		n *= d
	}
	return n
}

func (t tensor) bytes() uint64 {
	if t.typ == typeF32 {
		return 4 * t.elems()
	}
	return 2 * t.elems()
}

// tensors are llama's: token embedding, per block four attention matrices,
// three feed-forward matrices and two norms, the output norm and matrix.
func (m Model) tensors() []tensor {
	e, f, v := uint64(m.Embedding), uint64(m.FeedForward), uint64(m.VocabSize)
	kv := e / uint64(m.Heads) * uint64(m.HeadsKV)
	ts := []tensor{{"token_embd.weight", []uint64{e, v}, typeF16}}
	for i := range m.Blocks {
		blk := fmt.Sprintf("blk.%d.", i)
		ts = append(ts,
			tensor{blk + "attn_norm.weight", []uint64{e}, typeF32},
			tensor{blk + "attn_q.weight", []uint64{e, e}, typeF16},
			tensor{blk + "attn_k.weight", []uint64{e, kv}, typeF16},
			tensor{blk + "attn_v.weight", []uint64{e, kv}, typeF16},
			tensor{blk + "attn_output.weight", []uint64{e, e}, typeF16},
			tensor{blk + "ffn_norm.weight", []uint64{e}, typeF32},
			tensor{blk + "ffn_gate.weight", []uint64{e, f}, typeF16},
			tensor{blk + "ffn_up.weight", []uint64{e, f}, typeF16},
			tensor{blk + "ffn_down.weight", []uint64{f, e}, typeF16},
		)
	}
	return append(ts,
		tensor{"output_norm.weight", []uint64{e}, typeF32},
		tensor{"output.weight", []uint64{e, v}, typeF16})
}

// Parameters is the sum of the element counts of every tensor, what a GGUF
// reader reports as the parameter count.
func (m Model) Parameters() uint64 {
	var n uint64
	for _, t := range m.withDefaults().tensors() {
		n += t.elems()
	}
	return n
}

// TensorCount and KVCount are the counts in the file's header.
func (m Model) TensorCount() int { return len(m.withDefaults().tensors()) }

// KVCount is the number of key/value pairs the file holds.
const KVCount = 23

var cache sync.Map // Model (with defaults) → *encoded

type encoded struct {
	once       sync.Once
	data       []byte
	headerSize int64
}

func (m Model) encoded() *encoded {
	m = m.withDefaults()
	v, _ := cache.LoadOrStore(m, new(encoded))
	e := v.(*encoded)
	e.once.Do(func() { e.data, e.headerSize = m.encode() })
	return e
}

// Bytes is the whole file. Every call returns a fresh copy.
func (m Model) Bytes() []byte { return bytes.Clone(m.encoded().data) }

// HeaderSize is the length of the header, key/value and tensor-info
// sections: where a metadata reader stops (tensor data follows, aligned).
func (m Model) HeaderSize() int64 {
	_, n := m.withDefaults().encodeHeader() // not encoded(): a 70B model's data would not fit in memory
	return n
}

// WriteFile writes the file to path, mode 0644.
func (m Model) WriteFile(path string) error {
	return os.WriteFile(path, m.encoded().data, 0o644)
}

// File writes the model to a new file named name in a temporary directory
// of t and returns its absolute path.
func File(t testing.TB, m Model, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := m.WriteFile(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// writer appends little-endian GGUF values.
type writer struct{ bytes.Buffer }

func (w *writer) u32(v uint32) { w.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (w *writer) u64(v uint64) { w.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (w *writer) str(s string) { w.u64(uint64(len(s))); w.WriteString(s) }

// Value types of the key/value section (gguf_type).
const (
	kvUint32  = 4
	kvInt32   = 5
	kvFloat32 = 6
	kvBool    = 7
	kvString  = 8
	kvArray   = 9
)

func (w *writer) kvString(k, v string) { w.str(k); w.u32(kvString); w.str(v) }
func (w *writer) kvU32(k string, v uint32) {
	w.str(k)
	w.u32(kvUint32)
	w.u32(v)
}

func (w *writer) kvF32(k string, v float32) {
	w.str(k)
	w.u32(kvFloat32)
	w.u32(math.Float32bits(v))
}

func (w *writer) kvBool(k string, v bool) {
	w.str(k)
	w.u32(kvBool)
	if v {
		w.WriteByte(1)
	} else {
		w.WriteByte(0)
	}
}

// tokens are <unk>, <s>, </s>, the byte tokens <0x00>…<0xFF> (as many as
// fit), then plain tokens; their llama token types are unknown (2), control
// (3), byte (6) and normal (1).
func (m Model) tokens() (texts []string, types []int32) {
	texts = []string{"<unk>", "<s>", "</s>"}
	types = []int32{2, 3, 3}
	for b := 0; b < 256 && len(texts) < m.VocabSize; b++ {
		texts = append(texts, fmt.Sprintf("<0x%02X>", b))
		types = append(types, 6)
	}
	for i := 0; len(texts) < m.VocabSize; i++ {
		texts = append(texts, fmt.Sprintf("\u2581t%d", i))
		types = append(types, 1)
	}
	return texts, types
}

// encodeHeader writes the header, key/value and tensor-info sections and
// pads them to the alignment; headerSize is where the padding starts.
func (m Model) encodeHeader() (*writer, int64) {
	arch := m.Architecture
	ts := m.tensors()
	w := new(writer)
	w.WriteString("GGUF")
	w.u32(3)
	w.u64(uint64(len(ts)))
	w.u64(KVCount)

	w.kvString("general.architecture", arch)
	w.kvString("general.name", m.Name)
	w.kvU32("general.file_type", fileTypeF16)
	w.kvU32(arch+".context_length", m.ContextLength)
	w.kvU32(arch+".embedding_length", uint32(m.Embedding))
	w.kvU32(arch+".block_count", uint32(m.Blocks))
	w.kvU32(arch+".feed_forward_length", uint32(m.FeedForward))
	w.kvU32(arch+".attention.head_count", uint32(m.Heads))
	w.kvU32(arch+".attention.head_count_kv", uint32(m.HeadsKV))
	w.kvU32(arch+".rope.dimension_count", uint32(m.Embedding/m.Heads))
	w.kvF32(arch+".rope.freq_base", 10000)
	w.kvF32(arch+".attention.layer_norm_rms_epsilon", 1e-5)
	w.kvString("tokenizer.ggml.model", "llama")
	w.kvString("tokenizer.ggml.pre", "default")
	texts, types := m.tokens()
	w.str("tokenizer.ggml.tokens")
	w.u32(kvArray)
	w.u32(kvString)
	w.u64(uint64(len(texts)))
	for _, s := range texts {
		w.str(s)
	}
	w.str("tokenizer.ggml.scores")
	w.u32(kvArray)
	w.u32(kvFloat32)
	w.u64(uint64(len(texts)))
	for range texts {
		w.u32(0)
	}
	w.str("tokenizer.ggml.token_type")
	w.u32(kvArray)
	w.u32(kvInt32)
	w.u64(uint64(len(types)))
	for _, t := range types {
		w.u32(uint32(t))
	}
	w.kvU32("tokenizer.ggml.bos_token_id", 1)
	w.kvU32("tokenizer.ggml.eos_token_id", 2)
	w.kvU32("tokenizer.ggml.unknown_token_id", 0)
	w.kvBool("tokenizer.ggml.add_bos_token", true)
	w.kvBool("tokenizer.ggml.add_eos_token", false)
	w.kvU32(arch+".vocab_size", uint32(m.VocabSize))

	var off uint64
	for _, t := range ts {
		w.str(t.name)
		w.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			w.u64(d)
		}
		w.u32(t.typ)
		w.u64(off)
		off = align(off + t.bytes())
	}
	headerSize := int64(w.Len())
	w.Write(make([]byte, align(uint64(w.Len()))-uint64(w.Len())))
	return w, headerSize
}

func (m Model) encode() ([]byte, int64) {
	w, headerSize := m.encodeHeader()
	// Data: norms are ones, matrices small deterministic values, so an
	// engine that loads the file computes finite numbers.
	rng := uint32(2463534242)
	for _, t := range m.tensors() {
		start := w.Len()
		n := t.elems()
		if t.typ == typeF32 {
			for range n {
				w.u32(math.Float32bits(1))
			}
		} else {
			buf := make([]byte, 2*n)
			for i := range n {
				rng ^= rng << 13
				rng ^= rng >> 17
				rng ^= rng << 5
				// sign, exponent 2^-7..2^-6, random mantissa: |x| < 0.016
				h := uint16(rng>>16)&0x83ff | 0x2000
				binary.LittleEndian.PutUint16(buf[2*i:], h)
			}
			w.Write(buf)
		}
		pad := align(uint64(w.Len()-start)) - uint64(w.Len()-start)
		w.Write(make([]byte, pad))
	}
	return w.Bytes(), headerSize
}

func align(n uint64) uint64 { return (n + alignment - 1) / alignment * alignment }

// DataSize is the length of the tensor data section: every tensor, each
// padded to the alignment.
func (m Model) DataSize() int64 {
	var n uint64
	for _, t := range m.withDefaults().tensors() {
		n = align(n + t.bytes())
	}
	return int64(n)
}

// WriteHeaderOnly writes the header of m to path and extends the file with
// Truncate to the length its tensors claim, so the file is as long as the
// real model's but sparse: it takes a few megabytes on disk whatever the
// model's size. Its tensors read as zeros, which an engine can load (with
// mmap) and size its buffers for, though it computes nothing useful.
func (m Model) WriteHeaderOnly(path string) error {
	m = m.withDefaults()
	w, _ := m.encodeHeader()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(w.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("writing GGUF header to %s: %w", path, err)
	}
	if err := f.Truncate(int64(w.Len()) + m.DataSize()); err != nil {
		f.Close()
		return fmt.Errorf("extending %s to its tensors' size: %w", path, err)
	}
	return f.Close()
}

// HeaderOnlyFile is WriteHeaderOnly into a new file named name in a
// temporary directory of t; it returns the file's absolute path.
func HeaderOnlyFile(t testing.TB, m Model, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := m.WriteHeaderOnly(p); err != nil {
		t.Fatal(err)
	}
	return p
}
