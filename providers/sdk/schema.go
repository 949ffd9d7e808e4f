package sdk

import (
	"fmt"
	"math/big"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

// Flag marks an attribute built with Attr.
type Flag uint8

const (
	// Required makes the attribute required; without it, it is optional.
	Required Flag = 1 << iota
	// Sensitive keeps the value out of plans, state, handoff files and logs.
	Sensitive
	// ForcesReplacement makes a change of the value replace the pool's
	// replicas. Mark every attribute that reaches the engine's arguments or
	// environment: those only take effect when the engine restarts.
	ForcesReplacement
)

// Attr builds a schema attribute of type ty, optional unless Required is
// among flags:
//
//	"api_key": sdk.Attr(cty.String, "Key clients must send.", sdk.Sensitive, sdk.ForcesReplacement),
func Attr(ty cty.Type, description string, flags ...Flag) *providers.Attribute {
	var f Flag
	for _, fl := range flags {
		f |= fl
	}
	return &providers.Attribute{
		Type:              ty,
		Required:          f&Required != 0,
		Optional:          f&Required == 0,
		Sensitive:         f&Sensitive != 0,
		ForcesReplacement: f&ForcesReplacement != 0,
		Description:       description,
	}
}

// attr returns obj's attribute name, or false when obj is not a known,
// non-null object with a known, non-null attribute of that name.
func attr(obj cty.Value, name string) (cty.Value, bool) {
	if obj == cty.NilVal || !obj.IsKnown() || obj.IsNull() || !obj.Type().IsObjectType() || !obj.Type().HasAttribute(name) {
		return cty.NilVal, false
	}
	v, _ := obj.GetAttr(name).Unmark()
	if !v.IsKnown() || v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

// GetString returns the string attribute name of a decoded block, and
// whether it was set. A block that is absent (null) has no attributes set.
func GetString(obj cty.Value, name string) (string, bool) {
	v, ok := attr(obj, name)
	if !ok || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// GetFloat returns the number attribute name of a decoded block, and
// whether it was set.
func GetFloat(obj cty.Value, name string) (float64, bool) {
	v, ok := attr(obj, name)
	if !ok || v.Type() != cty.Number {
		return 0, false
	}
	f, _ := v.AsBigFloat().Float64()
	return f, true
}

// GetInt returns the number attribute name of a decoded block, and whether
// it was set. A number that is not a whole number in int's range is an
// error that names the attribute, ready for a diagnostic's detail.
func GetInt(obj cty.Value, name string) (int, bool, error) {
	v, ok := attr(obj, name)
	if !ok || v.Type() != cty.Number {
		return 0, false, nil
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, true, fmt.Errorf("%s must be a whole number, not %s", name, bf.Text('g', -1))
	}
	i, acc := bf.Int64()
	if acc != big.Exact || int64(int(i)) != i {
		return 0, true, fmt.Errorf("%s is too large: %s", name, bf.Text('g', -1))
	}
	return int(i), true, nil
}
