package providers

import (
	"sort"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
)

// Schema is what GetSchema returns: the shape of the provider "NAME" {} block
// and of the pool-level block named after the provider.
type Schema struct {
	Version  string // the provider's own version, shown by `llorch providers`
	Provider *Block
	Pool     *Block
}

// Block describes a configuration block's attributes and nested blocks.
type Block struct {
	Attributes  map[string]*Attribute
	Blocks      map[string]*NestedBlock
	Description string
}

// Attribute describes one attribute of a Block.
type Attribute struct {
	Type              cty.Type
	Required          bool
	Optional          bool
	Sensitive         bool // never printed, hashed in state, never in handoff files or logs
	ForcesReplacement bool // a change replaces the pool's replicas
	Description       string
}

// Nesting says how many nested blocks of one type are allowed.
type Nesting int

const (
	NestingSingle Nesting = iota // at most one; null when absent
	NestingList                  // any number, in order
)

// NestedBlock is a block inside a Block.
type NestedBlock struct {
	Block
	Nesting           Nesting
	Required          bool // NestingSingle only: the block must be present
	ForcesReplacement bool
}

// DecoderSpec returns the hcldec spec that decodes a body of this block into
// a cty object value (the shape of ImpliedType).
func (b *Block) DecoderSpec() hcldec.Spec {
	if b == nil {
		return hcldec.ObjectSpec{}
	}
	spec := hcldec.ObjectSpec{}
	for name, a := range b.Attributes {
		spec[name] = &hcldec.AttrSpec{Name: name, Type: a.Type, Required: a.Required}
	}
	for name, nb := range b.Blocks {
		inner := nb.Block.DecoderSpec()
		switch nb.Nesting {
		case NestingList:
			spec[name] = &hcldec.BlockListSpec{TypeName: name, Nested: inner}
		default:
			spec[name] = &hcldec.BlockSpec{TypeName: name, Nested: inner, Required: nb.Required}
		}
	}
	return spec
}

// ImpliedType is the cty object type DecoderSpec produces.
func (b *Block) ImpliedType() cty.Type {
	return hcldec.ImpliedType(b.DecoderSpec())
}

// AttributeNames returns the block's attribute names, sorted.
func (b *Block) AttributeNames() []string {
	if b == nil {
		return nil
	}
	names := make([]string, 0, len(b.Attributes))
	for n := range b.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SensitivePaths lists the paths of every sensitive attribute, nested
// blocks included, so that core can redact them before rendering or saving.
func (b *Block) SensitivePaths() []cty.Path {
	var out []cty.Path
	b.walk(cty.Path{}, func(p cty.Path, a *Attribute) {
		if a.Sensitive {
			out = append(out, p)
		}
	})
	return out
}

// ForcesReplacementPaths lists the paths whose change forces replacement.
func (b *Block) ForcesReplacementPaths() []cty.Path {
	var out []cty.Path
	if b == nil {
		return nil
	}
	for _, n := range sortedBlockNames(b.Blocks) {
		if b.Blocks[n].ForcesReplacement {
			out = append(out, cty.GetAttrPath(n))
		}
	}
	b.walk(cty.Path{}, func(p cty.Path, a *Attribute) {
		if a.ForcesReplacement {
			out = append(out, p)
		}
	})
	return out
}

func (b *Block) walk(prefix cty.Path, fn func(cty.Path, *Attribute)) {
	if b == nil {
		return
	}
	for _, n := range b.AttributeNames() {
		fn(prefix.Copy().GetAttr(n), b.Attributes[n])
	}
	for _, n := range sortedBlockNames(b.Blocks) {
		b.Blocks[n].Block.walk(prefix.Copy().GetAttr(n), fn)
	}
}

func sortedBlockNames(m map[string]*NestedBlock) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
