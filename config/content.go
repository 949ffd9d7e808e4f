package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// schemaIndex is a body schema with its names indexed, for content.
type schemaIndex struct {
	schema   *hcl.BodySchema
	attrs    map[string]bool // name → required
	blocks   map[string]int  // type → number of labels
	required int
}

func indexSchema(s *hcl.BodySchema) *schemaIndex {
	si := &schemaIndex{schema: s, attrs: make(map[string]bool, len(s.Attributes)), blocks: make(map[string]int, len(s.Blocks))}
	for _, a := range s.Attributes {
		si.attrs[a.Name] = a.Required
		if a.Required {
			si.required++
		}
	}
	for _, b := range s.Blocks {
		si.blocks[b.Type] = len(b.LabelNames)
	}
	return si
}

// content is body.Content(si.schema). A configuration of a thousand pools
// decodes a few thousand bodies, nearly all of which fit their schema;
// for those it builds the same content without the four maps HCL's
// general PartialContent makes for each. Anything else (an unexpected
// argument or block, a missing required one, wrong labels, a body not
// from the native syntax) goes to HCL, for its diagnostics.
//
// The body must be fresh from the parser, as every block body in a parsed
// file is: a body returned by PartialContent hides what it consumed, and
// only HCL can see that.
func (si *schemaIndex) content(body hcl.Body) (*hcl.BodyContent, hcl.Diagnostics) {
	sb, ok := body.(*hclsyntax.Body)
	if !ok || !si.fits(sb) {
		return body.Content(si.schema)
	}
	c := &hcl.BodyContent{
		Attributes:       make(hcl.Attributes, len(sb.Attributes)),
		MissingItemRange: sb.MissingItemRange(),
	}
	for name, a := range sb.Attributes {
		c.Attributes[name] = a.AsHCLAttribute()
	}
	if len(sb.Blocks) > 0 {
		c.Blocks = make(hcl.Blocks, len(sb.Blocks))
		for i, b := range sb.Blocks {
			c.Blocks[i] = b.AsHCLBlock()
		}
	}
	return c, nil
}

// fits reports whether every item of sb is in the schema, with the labels
// it wants, and every required argument is set.
func (si *schemaIndex) fits(sb *hclsyntax.Body) bool {
	required := 0
	for name := range sb.Attributes {
		req, ok := si.attrs[name]
		if !ok {
			return false
		}
		if req {
			required++
		}
	}
	if required != si.required {
		return false
	}
	for _, b := range sb.Blocks {
		if n, ok := si.blocks[b.Type]; !ok || n != len(b.Labels) {
			return false
		}
	}
	return true
}
