package didyoumean

import "github.com/agext/levenshtein"

// maxDistance is the edit distance below which a name counts as a likely
// typo. It is the threshold hclsyntax and OpenTofu use, chosen there by
// experiment.
const maxDistance = 3

// NameSuggestion returns the one of suggestions nearest to given by
// Levenshtein distance, if that distance is less than 3, or "" when none is
// that close. Earlier suggestions win ties, so callers list names in the
// order they prefer.
func NameSuggestion(given string, suggestions []string) string {
	best, bestDist := "", maxDistance
	for _, s := range suggestions {
		if d := levenshtein.Distance(given, s, nil); d < bestDist {
			best, bestDist = s, d
		}
	}
	return best
}
