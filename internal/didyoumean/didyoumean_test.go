package didyoumean

import "testing"

func TestNameSuggestion(t *testing.T) {
	policies := []string{"always", "on-failure", "never"}
	tests := []struct {
		name        string
		given       string
		suggestions []string
		want        string
	}{
		{"exact match is suggested", "never", policies, "never"},
		{"one letter doubled suggests the enum value", "allways", policies, "always"},
		{"two edits away is still close enough", "onfailur", policies, "on-failure"},
		{"three edits away is not suggested", "alwaysxyz", policies, ""},
		{"unrelated word gets no suggestion", "sometimes", policies, ""},
		{"engine name missing a letter", "llamacp", []string{"vllm", "llamacpp"}, "llamacpp"},
		{"earlier suggestion wins a tie", "ab", []string{"aa", "bb"}, "aa"},
		{"a nearer later suggestion beats a farther earlier one", "plam", []string{"apply", "plan"}, "plan"},
		{"empty suggestion list gets nothing", "always", nil, ""},
		{"empty given matches a short name", "", []string{"ab"}, "ab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NameSuggestion(tc.given, tc.suggestions); got != tc.want {
				t.Errorf("NameSuggestion(%q, %q) = %q, want %q", tc.given, tc.suggestions, got, tc.want)
			}
		})
	}
}
