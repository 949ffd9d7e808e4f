package config

import (
	"slices"
	"testing"
)

// A value its own validation refuses is reported once, by the validation:
// the pools that use it do not repeat the problem in other words.
func TestFailedValidationIsNotReportedAgainWhereTheValueIsUsed(t *testing.T) {
	const validated = `
variable "replicas" {
  type    = number
  default = 0
  validation {
    condition     = var.replicas > 0
    error_message = "The replica count must be positive."
  }
}

pool "chat" {
  engine   = "llamacpp"
  replicas = var.replicas
  port     = var.replicas
  model { ref = "file:m.gguf" }
}
`
	tests := []struct {
		name string
		opts LoadOptions
		want []string
	}{
		{
			name: "default refused",
			want: []string{
				"main.llorch.hcl:6:21: Invalid value for variable: The replica count must be positive.\n\nThis was checked by the validation rule at main.llorch.hcl:5.",
			},
		},
		{
			name: "-var refused",
			opts: LoadOptions{Vars: []VarArg{{Name: "replicas", Value: "-2"}}},
			want: []string{
				"main.llorch.hcl:6:21: Invalid value for variable: The replica count must be positive.\n\nThis was checked by the validation rule at main.llorch.hcl:5.",
			},
		},
		{
			name: "accepted value is used",
			opts: LoadOptions{Vars: []VarArg{{Name: "replicas", Value: "70000"}}},
			want: []string{
				"main.llorch.hcl:14:14: Invalid port: port 70000 is outside the range 1–65535. Use 0, or leave port out, to pick free ports at apply time.",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := load(t, map[string]string{"main.llorch.hcl": validated}, tc.opts)
			if got := diagStrings(diags); !slices.Equal(got, tc.want) {
				t.Errorf("diagnostics:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}
