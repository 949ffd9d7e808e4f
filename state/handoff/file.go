package handoff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/atomicfile"
)

// FileName is the handoff file name of a replica: "<pool>-<replica>.json",
// each part passed through Sanitize, so `embed["bge"]` and r0 give
// "embed_bge-r0.json".
func FileName(poolID, replicaID string) string {
	return Sanitize(poolID) + "-" + Sanitize(replicaID) + ".json"
}

// Sanitize makes s safe as part of a file name that routers and shells
// handle without quoting: every run of characters other than ASCII letters,
// digits, '.', '_' and '-' becomes one '_', and a leading or trailing '_'
// made that way is dropped. `embed["bge"]` becomes "embed_bge" and x[0]
// becomes "x_0". Distinct keys can meet (`a["b"]` and a_b); config
// validation, which sees every pool, is the place to refuse that.
func Sanitize(s string) string {
	var b strings.Builder
	pending := false // a run of unsafe characters not yet written as '_'
	for _, r := range s {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			if pending && b.Len() > 0 {
				b.WriteByte('_')
			}
			pending = false
			b.WriteRune(r)
			continue
		}
		pending = true
	}
	out := b.String()
	if out == "" || strings.Trim(out, ".") == "" {
		return "_" // never "", "." or "..": they are not file names
	}
	return out
}

// Write writes f to path atomically with mode 0644, creating the directory
// (0755) if needed. Readers see the old file or the new one, never a mix.
// nil Flags and Labels are written as [] and {}, so routers need not
// handle null.
func Write(afs afero.Fs, path string, f File) error {
	if path == "" {
		return errors.New("writing handoff file: no path given")
	}
	if f.Flags == nil {
		f.Flags = []string{}
	}
	if f.Labels == nil {
		f.Labels = map[string]string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("encoding handoff file %s: %w", path, err)
	}
	if err := afs.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating handoff directory for %s: %w", path, err)
	}
	if err := atomicfile.Write(afs, path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing handoff file: %w", err)
	}
	return nil
}

// Read reads the handoff file at path. A missing file is an error that
// satisfies errors.Is(err, fs.ErrNotExist).
func Read(afs afero.Fs, path string) (File, error) {
	data, err := afero.ReadFile(afs, path)
	if err != nil {
		return File{}, fmt.Errorf("reading handoff file: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes the handoff file at path from its contents data.
func Parse(path string, data []byte) (File, error) {
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return File{}, fmt.Errorf("handoff file %s is not valid JSON (byte %d): %w", path, syn.Offset, err)
		}
		return File{}, fmt.Errorf("handoff file %s: %w", path, err)
	}
	return f, nil
}

// Remove deletes the handoff file at path. A file already gone is not an
// error: removal happens on destroy and on stop, and either may come twice.
func Remove(afs afero.Fs, path string) error {
	if err := afs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing handoff file %s: %w", path, err)
	}
	return nil
}
