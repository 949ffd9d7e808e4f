package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// hash is Config.Hash: "sha256:<hex>" over every file read (name relative
// to the configuration directory, and bytes), the final variable values as
// JSON, and what file() and env() returned, each in name order. Every item
// is written with its kind, name and length, so no two different inputs
// give the same byte stream.
func (l *loader) hash() string {
	h := sha256.New()
	for _, name := range sortedKeys(l.sources) {
		writeItem(h, "file", name, l.sources[name])
	}
	for _, name := range sortedKeys(l.cfg.Variables) {
		v := l.cfg.Variables[name].Value
		b := []byte("unknown") // a variable without a valid value; Load reported it
		if v.IsWhollyKnown() {
			if j, err := ctyjson.Marshal(v, v.Type()); err == nil {
				b = j
			}
		}
		writeItem(h, "var", name, b)
	}
	l.fileReadsMu.Lock()
	for _, key := range sortedKeys(l.fileReads) {
		writeItem(h, "read", key, l.fileReads[key])
	}
	l.fileReadsMu.Unlock()
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

func writeItem(h hash.Hash, kind, name string, b []byte) {
	fmt.Fprintf(h, "%s %q %d\n", kind, name, len(b))
	h.Write(b)
	h.Write([]byte{'\n'})
}
