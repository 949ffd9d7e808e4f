package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strings"
)

// Errors a caller can test with errors.Is; the returned errors wrap them with
// the detail (offset, offending value).
var (
	// ErrNotGGUF: the file does not start with the "GGUF" magic.
	ErrNotGGUF = errors.New("not a GGUF file")
	// ErrUnsupportedVersion: a GGUF version other than 2 or 3.
	ErrUnsupportedVersion = errors.New("unsupported GGUF version")
	// ErrTruncated: the file ends inside the metadata.
	ErrTruncated = errors.New("truncated GGUF file")
	// ErrCorrupt: a length, type or count in the metadata is impossible.
	ErrCorrupt = errors.New("corrupt GGUF file")
)

// Metadata is what llorch reads from a GGUF file.
type Metadata struct {
	Version      uint32 // 2 or 3
	Architecture string // general.architecture, e.g. "llama"
	Name         string // general.name, "" when absent
	// FileType is general.file_type (llama.cpp's llama_ftype), -1 when absent.
	FileType int
	// Quantization names FileType ("Q4_K_M", "F16"); when the key is absent
	// or unknown, the tensor type holding the most weights.
	Quantization  string
	ContextLength uint64 // <architecture>.context_length, 0 when absent
	Parameters    uint64 // sum of the element counts of every tensor
	TensorCount   uint64
	KVCount       uint64
	// HeaderSize is the number of bytes read: the header, the key/value
	// section and the tensor infos (tensor data starts after alignment).
	HeaderSize int64
}

const (
	magic = "GGUF"
	// maxKeyLen is the GGUF specification's bound on key length.
	maxKeyLen = 65535
	// maxKeptString bounds the string values this reader keeps in memory
	// (architecture, name); skipped strings may be of any length.
	maxKeptString = 1 << 20
	// maxDims is GGML_MAX_DIMS.
	maxDims = 4
	// maxArrayDepth bounds nested arrays so that a corrupt file cannot
	// recurse without end.
	maxArrayDepth = 8
)

// Value types of the key/value section (gguf_type).
const (
	typeUint8   = 0
	typeInt8    = 1
	typeUint16  = 2
	typeInt16   = 3
	typeUint32  = 4
	typeInt32   = 5
	typeFloat32 = 6
	typeBool    = 7
	typeString  = 8
	typeArray   = 9
	typeUint64  = 10
	typeInt64   = 11
	typeFloat64 = 12
)

// ReadFile reads the metadata of the GGUF file at path. It reads only the
// metadata sections, however large the file.
func ReadFile(path string) (*Metadata, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	md, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return md, nil
}

// Read reads GGUF metadata from r, which must be positioned at the start of
// the file. It stops after the tensor-info section.
func Read(r io.Reader) (*Metadata, error) {
	d := &decoder{r: bufio.NewReaderSize(r, 64<<10)}
	return d.read()
}

type decoder struct {
	r   *bufio.Reader
	off int64
	buf [8]byte
	// what is being read, for truncation errors
	where string
}

func (d *decoder) read() (*Metadata, error) {
	d.where = "the header"
	var head [4]byte
	n, err := io.ReadFull(d.r, head[:])
	d.off += int64(n)
	if err != nil {
		if n == 0 {
			return nil, fmt.Errorf("%w: the file is empty", ErrNotGGUF)
		}
		return nil, fmt.Errorf("%w: the file is %d bytes long, shorter than a GGUF header", ErrNotGGUF, n)
	}
	if string(head[:]) != magic {
		return nil, fmt.Errorf("%w: it starts with %q, not %q", ErrNotGGUF, head[:], magic)
	}
	rawVersion, err := d.u32()
	if err != nil {
		return nil, err
	}
	md := &Metadata{Version: rawVersion, FileType: -1}
	switch {
	case rawVersion == 2 || rawVersion == 3:
	case rawVersion&0xffff == 0 && (bits.ReverseBytes32(rawVersion) == 2 || bits.ReverseBytes32(rawVersion) == 3):
		return nil, fmt.Errorf("%w: big-endian GGUF version %d; llama.cpp on this machine reads little-endian files",
			ErrUnsupportedVersion, bits.ReverseBytes32(rawVersion))
	default:
		return nil, fmt.Errorf("%w: version %d (llama.cpp reads versions 2 and 3); convert the model again with a current llama.cpp",
			ErrUnsupportedVersion, rawVersion)
	}
	if md.TensorCount, err = d.u64(); err != nil {
		return nil, err
	}
	if md.KVCount, err = d.u64(); err != nil {
		return nil, err
	}

	contextLengths := map[string]uint64{}
	for i := uint64(0); i < md.KVCount; i++ {
		d.where = fmt.Sprintf("key/value %d of %d", i+1, md.KVCount)
		key, err := d.str(maxKeyLen, "key")
		if err != nil {
			return nil, err
		}
		vt, err := d.u32()
		if err != nil {
			return nil, err
		}
		switch {
		case key == "general.architecture" && vt == typeString:
			if md.Architecture, err = d.str(maxKeptString, key); err != nil {
				return nil, err
			}
		case key == "general.name" && vt == typeString:
			if md.Name, err = d.str(maxKeptString, key); err != nil {
				return nil, err
			}
		case key == "general.file_type" && isInteger(vt):
			v, err := d.integer(vt)
			if err != nil {
				return nil, err
			}
			if v <= math.MaxInt32 {
				md.FileType = int(v)
			}
		case strings.HasSuffix(key, ".context_length") && isInteger(vt):
			v, err := d.integer(vt)
			if err != nil {
				return nil, err
			}
			contextLengths[strings.TrimSuffix(key, ".context_length")] = v
		default:
			if err := d.skipValue(vt, 0); err != nil {
				return nil, fmt.Errorf("%w (key %q)", err, key)
			}
		}
	}
	md.ContextLength = contextLengths[md.Architecture]

	elemsByType := map[uint32]uint64{}
	for i := uint64(0); i < md.TensorCount; i++ {
		d.where = fmt.Sprintf("tensor info %d of %d", i+1, md.TensorCount)
		name, err := d.str(maxKeyLen, "tensor name")
		if err != nil {
			return nil, err
		}
		nDims, err := d.u32()
		if err != nil {
			return nil, err
		}
		if nDims == 0 || nDims > maxDims {
			return nil, fmt.Errorf("%w: tensor %q has %d dimensions at byte %d (at most %d)", ErrCorrupt, name, nDims, d.off-4, maxDims)
		}
		elems := uint64(1)
		for j := uint32(0); j < nDims; j++ {
			dim, err := d.u64()
			if err != nil {
				return nil, err
			}
			hi, lo := bits.Mul64(elems, dim)
			if hi != 0 {
				return nil, fmt.Errorf("%w: tensor %q's dimensions overflow 64 bits", ErrCorrupt, name)
			}
			elems = lo
		}
		ggmlType, err := d.u32()
		if err != nil {
			return nil, err
		}
		if _, err := d.u64(); err != nil { // data offset
			return nil, err
		}
		sum, carry := bits.Add64(md.Parameters, elems, 0)
		if carry != 0 {
			return nil, fmt.Errorf("%w: the tensor element counts overflow 64 bits", ErrCorrupt)
		}
		md.Parameters = sum
		elemsByType[ggmlType] += elems
	}
	md.HeaderSize = d.off
	md.Quantization = quantization(md.FileType, elemsByType)
	return md, nil
}

// quantization names the file type, falling back to the tensor type that
// holds the most elements (ties go to the lower type id, for determinism).
func quantization(fileType int, elemsByType map[uint32]uint64) string {
	if fileType >= 0 {
		if name := FileTypeName(fileType); name != "" {
			return name
		}
	}
	var (
		best      uint32
		bestElems uint64
		found     bool
	)
	for t, n := range elemsByType {
		if !found || n > bestElems || (n == bestElems && t < best) {
			best, bestElems, found = t, n, true
		}
	}
	if !found {
		return ""
	}
	return TensorTypeName(best)
}

func isInteger(vt uint32) bool {
	switch vt {
	case typeUint8, typeInt8, typeUint16, typeInt16, typeUint32, typeInt32, typeUint64, typeInt64:
		return true
	}
	return false
}

func scalarSize(vt uint32) int {
	switch vt {
	case typeUint8, typeInt8, typeBool:
		return 1
	case typeUint16, typeInt16:
		return 2
	case typeUint32, typeInt32, typeFloat32:
		return 4
	case typeUint64, typeInt64, typeFloat64:
		return 8
	}
	return 0
}

// integer reads an integer value of type vt; negative values read as 0
// (none of the keys read this way can be negative).
func (d *decoder) integer(vt uint32) (uint64, error) {
	size := scalarSize(vt)
	if err := d.full(d.buf[:size]); err != nil {
		return 0, err
	}
	b := d.buf[:size]
	var v int64
	switch vt {
	case typeUint8:
		return uint64(b[0]), nil
	case typeInt8:
		v = int64(int8(b[0]))
	case typeUint16:
		return uint64(binary.LittleEndian.Uint16(b)), nil
	case typeInt16:
		v = int64(int16(binary.LittleEndian.Uint16(b)))
	case typeUint32:
		return uint64(binary.LittleEndian.Uint32(b)), nil
	case typeInt32:
		v = int64(int32(binary.LittleEndian.Uint32(b)))
	case typeUint64:
		return binary.LittleEndian.Uint64(b), nil
	case typeInt64:
		v = int64(binary.LittleEndian.Uint64(b))
	}
	if v < 0 {
		return 0, nil
	}
	return uint64(v), nil
}

func (d *decoder) skipValue(vt uint32, depth int) error {
	if size := scalarSize(vt); size > 0 {
		return d.skip(uint64(size))
	}
	switch vt {
	case typeString:
		n, err := d.u64()
		if err != nil {
			return err
		}
		return d.skip(n)
	case typeArray:
		if depth >= maxArrayDepth {
			return fmt.Errorf("%w: arrays nested deeper than %d at byte %d", ErrCorrupt, maxArrayDepth, d.off)
		}
		et, err := d.u32()
		if err != nil {
			return err
		}
		count, err := d.u64()
		if err != nil {
			return err
		}
		if size := scalarSize(et); size > 0 {
			hi, total := bits.Mul64(count, uint64(size))
			if hi != 0 {
				return fmt.Errorf("%w: array of %d elements at byte %d is impossibly large", ErrCorrupt, count, d.off)
			}
			return d.skip(total)
		}
		if et != typeString && et != typeArray {
			return fmt.Errorf("%w: unknown array element type %d at byte %d", ErrCorrupt, et, d.off-12)
		}
		for i := uint64(0); i < count; i++ {
			if err := d.skipValue(et, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: unknown value type %d at byte %d", ErrCorrupt, vt, d.off-4)
}

func (d *decoder) str(limit uint64, what string) (string, error) {
	n, err := d.u64()
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", fmt.Errorf("%w: %s of %d bytes at byte %d (at most %d)", ErrCorrupt, what, n, d.off-8, limit)
	}
	b := make([]byte, n)
	if err := d.full(b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (d *decoder) u32() (uint32, error) {
	if err := d.full(d.buf[:4]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(d.buf[:4]), nil
}

func (d *decoder) u64() (uint64, error) {
	if err := d.full(d.buf[:8]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(d.buf[:8]), nil
}

func (d *decoder) full(b []byte) error {
	n, err := io.ReadFull(d.r, b)
	d.off += int64(n)
	if err != nil {
		return d.eofError(err)
	}
	return nil
}

func (d *decoder) skip(n uint64) error {
	for n > 0 {
		chunk := n
		if chunk > math.MaxInt32 {
			chunk = math.MaxInt32
		}
		got, err := d.r.Discard(int(chunk))
		d.off += int64(got)
		if err != nil {
			return d.eofError(err)
		}
		n -= chunk
	}
	return nil
}

func (d *decoder) eofError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: it ends at byte %d, inside %s", ErrTruncated, d.off, d.where)
	}
	return fmt.Errorf("reading GGUF metadata at byte %d: %w", d.off, err)
}
