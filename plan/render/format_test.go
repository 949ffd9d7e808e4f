package render

import (
	"encoding/json"
	"testing"

	"github.com/llorch/llorch/providers"
)

func TestFormatValue(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "null"},
		{"a\"b", `"a\"b"`},
		{"${x} %{y}", `"$${x} %%{y}"`},
		{3, "3"},
		{2.0, "2"},
		{0.1, "0.1"},
		{true, "true"},
		{[]int{0, 1}, "[0, 1]"},
		{[]int{}, "[]"},
		{[]string{"--parallel", "4"}, `["--parallel", "4"]`},
		{json.RawMessage(`{"b":[1,"x"],"a b":null}`), `{ "a b" = null, b = [1, "x"] }`},
		{json.RawMessage(`99`), "99"},
		{json.RawMessage(`{}`), "{}"},
		{[]any{json.Number("1.50"), "x"}, `[1.50, "x"]`},
	}
	for _, tc := range tests {
		if got := formatValue(tc.in); got != tc.want {
			t.Errorf("formatValue(%#v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestModelSummary(t *testing.T) {
	tests := []struct {
		in   providers.ModelInfo
		want string
	}{
		{providers.ModelInfo{Architecture: "llama", Parameters: 4_200_000, Quantization: "Q8_0", ContextLength: 256, SizeBytes: 9_437_184}, "GGUF llama, 4.2M params, Q8_0, trained ctx 256, 9.0 MiB"},
		{providers.ModelInfo{Architecture: "qwen2", Parameters: 494_032_768, Quantization: "Q4_K_M", SizeBytes: 397_808_192}, "GGUF qwen2, 494M params, Q4_K_M, 379.4 MiB"},
		{providers.ModelInfo{Architecture: "llama", Parameters: 7_615_616_512, SizeBytes: 4_683_073_184}, "GGUF llama, 7.6B params, 4.4 GiB"},
		{providers.ModelInfo{Parameters: 900, SizeBytes: 512}, "GGUF, 900 params, 512 B"},
	}
	for _, tc := range tests {
		if got := modelSummary(&tc.in); got != tc.want {
			t.Errorf("modelSummary(%+v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
