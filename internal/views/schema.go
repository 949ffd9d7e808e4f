package views

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

// WriteSchema prints a provider's schema for `llorch providers`:
//
//	provider block:
//	  binary  string  optional  a path, or a name on PATH
//	pool block:
//	  api_key  string  optional, sensitive, forces replacement
func WriteSchema(w io.Writer, s *providers.Schema) {
	if s == nil {
		return
	}
	writeBlock(w, "provider block", s.Provider, "  ")
	writeBlock(w, "pool block", s.Pool, "  ")
}

func writeBlock(w io.Writer, title string, b *providers.Block, indent string) {
	if b == nil || (len(b.Attributes) == 0 && len(b.Blocks) == 0) {
		return
	}
	fmt.Fprintf(w, "%s%s:\n", indent, title)
	for _, name := range b.AttributeNames() {
		a := b.Attributes[name]
		var flags []string
		if a.Required {
			flags = append(flags, "required")
		} else {
			flags = append(flags, "optional")
		}
		if a.Sensitive {
			flags = append(flags, "sensitive")
		}
		if a.ForcesReplacement {
			flags = append(flags, "forces replacement")
		}
		fmt.Fprintf(w, "%s  %-24s %-14s %s", indent, name, typeName(a.Type), strings.Join(flags, ", "))
		if a.Description != "" {
			fmt.Fprintf(w, "  # %s", a.Description)
		}
		fmt.Fprintln(w)
	}
	names := make([]string, 0, len(b.Blocks))
	for n := range b.Blocks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		writeBlock(w, n+" {}", &b.Blocks[n].Block, indent+"  ")
	}
}

func typeName(t cty.Type) string {
	if t == cty.NilType {
		return "any"
	}
	return t.FriendlyName()
}
