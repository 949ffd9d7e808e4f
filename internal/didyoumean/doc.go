// Package didyoumean suggests the closest known name for a misspelt one, so
// diagnostics can say "Did you mean "always"?" for enum values and names
// that hclsyntax does not check itself.
package didyoumean
