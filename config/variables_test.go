package config

import (
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestParseVarFlag(t *testing.T) {
	tests := []struct {
		name    string
		arg     string
		want    VarArg
		wantErr string
	}{
		{name: "name and value", arg: "models=/srv/models", want: VarArg{Name: "models", Value: "/srv/models"}},
		{name: "value may contain equals signs", arg: "flags=--a=b", want: VarArg{Name: "flags", Value: "--a=b"}},
		{name: "empty value is allowed", arg: "x=", want: VarArg{Name: "x", Value: ""}},
		{name: "missing equals sign", arg: "models", wantErr: `invalid -var "models": expected name=value, like -var 'models=/srv/models'`},
		{name: "empty name", arg: "=x", wantErr: `invalid -var "=x": the variable name before "=" is empty`},
		{name: "name that is not an identifier", arg: "my var=x", wantErr: `invalid -var "my var=x": "my var" is not a valid variable name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVarFlag(tc.arg)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("ParseVarFlag(%q) error = %v, want %q", tc.arg, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseVarFlag(%q) = %+v, %v; want %+v", tc.arg, got, err, tc.want)
			}
		})
	}
}

func TestVariablePrecedence(t *testing.T) {
	const decl = `variable "v" { default = "default" }`
	tests := []struct {
		name    string
		files   map[string]string
		environ []string
		vars    []VarArg
		want    string
	}{
		{
			name:  "default alone",
			files: map[string]string{"main.llorch.hcl": decl},
			want:  "default",
		},
		{
			name:    "environment beats default",
			files:   map[string]string{"main.llorch.hcl": decl},
			environ: []string{"LLORCH_VAR_v=env"},
			want:    "env",
		},
		{
			name:    "auto file beats environment",
			files:   map[string]string{"main.llorch.hcl": decl, "a.auto.llorchvars.hcl": `v = "auto"`},
			environ: []string{"LLORCH_VAR_v=env"},
			want:    "auto",
		},
		{
			name: "later auto file beats earlier one",
			files: map[string]string{
				"main.llorch.hcl":       decl,
				"b.auto.llorchvars.hcl": `v = "auto-b"`,
				"a.auto.llorchvars.hcl": `v = "auto-a"`,
			},
			want: "auto-b",
		},
		{
			name:    "command line beats auto file and environment",
			files:   map[string]string{"main.llorch.hcl": decl, "a.auto.llorchvars.hcl": `v = "auto"`},
			environ: []string{"LLORCH_VAR_v=env"},
			vars:    []VarArg{{Name: "v", Value: "cli"}},
			want:    "cli",
		},
		{
			name:  "later -var-file beats earlier -var",
			files: map[string]string{"main.llorch.hcl": decl, "prod.llorchvars.hcl": `v = "file"`},
			vars:  []VarArg{{Name: "v", Value: "cli"}, {File: "prod.llorchvars.hcl"}},
			want:  "file",
		},
		{
			name:  "later -var beats earlier -var-file",
			files: map[string]string{"main.llorch.hcl": decl, "prod.llorchvars.hcl": `v = "file"`},
			vars:  []VarArg{{File: "prod.llorchvars.hcl"}, {Name: "v", Value: "cli"}},
			want:  "cli",
		},
		{
			name:    "environment variable names are case-sensitive",
			files:   map[string]string{"main.llorch.hcl": decl},
			environ: []string{"LLORCH_VAR_V=wrong", "llorch_var_v=wrong"},
			want:    "default",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			environ := tc.environ
			if environ == nil {
				environ = []string{}
			}
			cfg := mustLoad(t, tc.files, LoadOptions{Vars: tc.vars, Environ: environ})
			got := cfg.Variables["v"].Value
			if !got.RawEquals(cty.StringVal(tc.want)) {
				t.Errorf("v = %#v, want %q", got, tc.want)
			}
		})
	}
}

func TestVariableValuesAreParsedByType(t *testing.T) {
	files := map[string]string{"main.llorch.hcl": `
variable "s" { type = string }
variable "any" {}
variable "n" { type = number }
variable "l" { type = list(string) }
variable "m" { type = map(number) }
variable "b" { type = bool }
variable "o" {
  type = object({
    port = number
    host = optional(string, "127.0.0.1")
  })
}
`}
	cfg := mustLoad(t, files, LoadOptions{
		Environ: []string{`LLORCH_VAR_l=["a", "b"]`, `LLORCH_VAR_s=["not", "a", "list"]`, `LLORCH_VAR_b=true`},
		Vars: []VarArg{
			{Name: "any", Value: "1 + 1"},
			{Name: "n", Value: "2 * 21"},
			{Name: "m", Value: "{ a = 1 }"},
			{Name: "o", Value: "{ port = 8080 }"},
		},
	})
	tests := []struct {
		name string
		want cty.Value
	}{
		{"s", cty.StringVal(`["not", "a", "list"]`)},
		{"any", cty.StringVal("1 + 1")},
		{"n", cty.NumberIntVal(42)},
		{"l", cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")})},
		{"m", cty.MapVal(map[string]cty.Value{"a": cty.NumberIntVal(1)})},
		{"b", cty.True},
		{"o", cty.ObjectVal(map[string]cty.Value{"port": cty.NumberIntVal(8080), "host": cty.StringVal("127.0.0.1")})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cfg.Variables[tc.name].Value; !got.RawEquals(tc.want) {
				t.Errorf("var.%s = %#v, want %#v", tc.name, got, tc.want)
			}
		})
	}
}

func TestVariableDeclarationIsRecorded(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `variable "models" {
  type        = string
  default     = "/srv/models"
  description = "Where models live."
  sensitive   = false
}`}, LoadOptions{})
	v := cfg.Variables["models"]
	if v.Name != "models" || v.Type != cty.String || v.Description != "Where models live." || v.Sensitive ||
		!v.Default.RawEquals(cty.StringVal("/srv/models")) || !v.Value.RawEquals(cty.StringVal("/srv/models")) {
		t.Errorf("Variable = %+v", v)
	}
	if v.DeclRange.Filename != "main.llorch.hcl" || v.DeclRange.Start.Line != 1 {
		t.Errorf("DeclRange = %s", v.DeclRange)
	}
}

func TestVariableValidation(t *testing.T) {
	files := map[string]string{"main.llorch.hcl": `variable "replicas" {
  type    = number
  default = 1
  validation {
    condition     = var.replicas <= 8
    error_message = "At most 8 replicas fit on one host."
  }
  validation {
    condition     = var.replicas > 0
    error_message = "Replicas must be positive."
  }
}
`}
	mustLoad(t, files, LoadOptions{})

	_, diags := load(t, files, LoadOptions{Vars: []VarArg{{Name: "replicas", Value: "9"}}})
	checkDiags(t, diags, []string{
		"main.llorch.hcl:5:21: Invalid value for variable: At most 8 replicas fit on one host.\n\nThis was checked by the validation rule at main.llorch.hcl:4.",
	})
}

func TestVariableErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		opts  LoadOptions
		want  []string
	}{
		{
			name:  "required variable without a value",
			files: map[string]string{"main.llorch.hcl": `variable "models" { type = string }`},
			want: []string{
				`main.llorch.hcl:1:1: No value for required variable: The variable "models" has no default value, so it must be set. Use -var 'models=VALUE', a -var-file, a *.auto.llorchvars.hcl file, or the LLORCH_VAR_models environment variable, or give the variable a default.`,
			},
		},
		{
			name:  "assignment to an undeclared variable in an auto file",
			files: map[string]string{"main.llorch.hcl": `variable "models" { default = "" }`, "x.auto.llorchvars.hcl": "\nmodel = \"/srv\"\n"},
			want: []string{
				`x.auto.llorchvars.hcl:2:1: Value for undeclared variable: A variable named "model" is assigned in x.auto.llorchvars.hcl, but no variable "model" {} block declares it. Did you mean "models"? Declare it, or remove the assignment.`,
			},
		},
		{
			name:  "assignment to an undeclared variable in a -var-file",
			files: map[string]string{"main.llorch.hcl": ``, "prod.llorchvars.hcl": "nope = 1\n"},
			opts:  LoadOptions{Vars: []VarArg{{File: "prod.llorchvars.hcl"}}},
			want: []string{
				`prod.llorchvars.hcl:1:1: Value for undeclared variable: A variable named "nope" is assigned in prod.llorchvars.hcl, but no variable "nope" {} block declares it. Declare it, or remove the assignment.`,
			},
		},
		{
			name:  "assignment to an undeclared variable with -var",
			files: map[string]string{"main.llorch.hcl": `variable "models" { default = "" }`},
			opts:  LoadOptions{Vars: []VarArg{{Name: "modles", Value: "x"}}},
			want: []string{
				`Value for undeclared variable: A variable named "modles" was assigned on the command line, but no variable "modles" {} block declares it. Did you mean "models"? Declare it, or remove the -var option.`,
			},
		},
		{
			name:  "assignment to an undeclared variable in the environment is ignored",
			files: map[string]string{"main.llorch.hcl": `variable "models" { default = "" }`},
			opts:  LoadOptions{Environ: []string{"LLORCH_VAR_other=x"}},
			want:  []string{},
		},
		{
			name:  "missing -var-file",
			files: map[string]string{"main.llorch.hcl": ``},
			opts:  LoadOptions{Vars: []VarArg{{File: "prod.llorchvars.hcl"}}},
			want: []string{
				`Failed to read file: The file prod.llorchvars.hcl could not be read: file does not exist.`,
			},
		},
		{
			name:  "-var value of the wrong type",
			files: map[string]string{"main.llorch.hcl": `variable "n" { type = number }`},
			opts:  LoadOptions{Vars: []VarArg{{Name: "n", Value: "true"}}},
			want: []string{
				`main.llorch.hcl:1:1: Invalid value for input variable: The value "true" for variable "n" from the command line (-var) is not a number: variable "n" is of type number. Write a number, like -var 'n=3'.`,
			},
		},
		{
			name:  "-var number that is a word",
			files: map[string]string{"main.llorch.hcl": `variable "n" { type = number }`},
			opts:  LoadOptions{Vars: []VarArg{{Name: "n", Value: "abc"}}},
			want: []string{
				`main.llorch.hcl:1:1: Invalid value for input variable: The value "abc" for variable "n" from the command line (-var) is not a number: variable "n" is of type number. Write a number, like -var 'n=3'.`,
			},
		},
		{
			name:  "-var bool that is not true or false",
			files: map[string]string{"main.llorch.hcl": `variable "b" { type = bool }`},
			opts:  LoadOptions{Vars: []VarArg{{Name: "b", Value: "yes"}}},
			want: []string{
				`main.llorch.hcl:1:1: Invalid value for input variable: The value "yes" for variable "b" from the command line (-var) is not true or false: variable "b" is of type bool. Write true or false, like -var 'b=true'.`,
			},
		},
		{
			name:  "environment value that is not valid HCL",
			files: map[string]string{"main.llorch.hcl": `variable "l" { type = list(string) }`},
			opts:  LoadOptions{Environ: []string{"LLORCH_VAR_l=[a, b"}},
			want: []string{
				`main.llorch.hcl:1:1: Invalid value for input variable: The value "[a, b" for variable "l" from the LLORCH_VAR_l environment variable is not a valid list(string): Unterminated tuple constructor expression; There is no corresponding closing bracket before the end of the file. This may be caused by incorrect bracket nesting elsewhere in this file. Values for variables of this type are written in HCL syntax, like ["a", "b"] or { key = "value" }.`,
			},
		},
		{
			name:  "var file value of the wrong type points at the value",
			files: map[string]string{"main.llorch.hcl": `variable "n" { type = number }`, "a.auto.llorchvars.hcl": `n = "many"`},
			want: []string{
				`a.auto.llorchvars.hcl:1:5: Invalid value for input variable: The value for variable "n" from a.auto.llorchvars.hcl does not match its type number: a number is required.`,
			},
		},
		{
			name:  "var files cannot refer to anything",
			files: map[string]string{"main.llorch.hcl": `variable "n" { type = number }`, "a.auto.llorchvars.hcl": `n = var.m`},
			want: []string{
				`a.auto.llorchvars.hcl:1:5: Variables not allowed: Variables may not be used here.`,
			},
		},
		{
			name:  "default of the wrong type",
			files: map[string]string{"main.llorch.hcl": "variable \"p\" {\n  type    = number\n  default = \"eighty\"\n}"},
			want: []string{
				`main.llorch.hcl:3:13: Invalid default value for variable: The default value of variable "p" does not match its type number: a number is required.`,
			},
		},
		{
			name:  "unknown type",
			files: map[string]string{"main.llorch.hcl": "variable \"p\" {\n  type = integer\n}"},
			want: []string{
				`main.llorch.hcl:2:10: Invalid type specification: The keyword "integer" is not a valid type specification.`,
			},
		},
		{
			name: "validation condition that is not a bool",
			files: map[string]string{"main.llorch.hcl": `variable "p" {
  default = 1
  validation {
    condition     = "yes please"
    error_message = "No."
  }
}`},
			want: []string{
				`main.llorch.hcl:4:21: Invalid variable validation result: The condition for variable "p" must return true or false: a bool is required.`,
			},
		},
		{
			name: "validation that refers to a local",
			files: map[string]string{"main.llorch.hcl": `locals {
  max = 3
}
variable "p" {
  default = 1
  validation {
    condition     = var.p < local.max
    error_message = "Too many."
  }
}`},
			want: []string{
				`main.llorch.hcl:7:29: Invalid reference in variable validation: The condition for variable "p" can refer only to input variables (var.NAME), not to local values.`,
			},
		},
		{
			name: "validation message that would show a sensitive value is hidden",
			files: map[string]string{"main.llorch.hcl": `variable "key" {
  default   = "short"
  sensitive = true
  validation {
    condition     = length(var.key) > 10
    error_message = "Key ${var.key} is too short."
  }
}`},
			want: []string{
				"main.llorch.hcl:5:21: Invalid value for variable: The value of variable \"key\" is not valid. (The error message refers to a sensitive value, so it is not shown.)\n\nThis was checked by the validation rule at main.llorch.hcl:4.",
			},
		},
		{
			name: "validation block without its arguments",
			files: map[string]string{"main.llorch.hcl": `variable "p" {
  default = 1
  validation {
    condition = true
  }
}`},
			want: []string{
				`main.llorch.hcl:3:14: Missing required argument: The argument "error_message" is required, but no definition was found.`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := load(t, tc.files, tc.opts)
			checkDiags(t, diags, tc.want)
		})
	}
}

func TestValidationSeesOtherVariables(t *testing.T) {
	files := map[string]string{"main.llorch.hcl": `variable "min" { default = 2 }
variable "n" {
  default = 3
  validation {
    condition     = var.n >= var.min
    error_message = "n must be at least min."
  }
}`}
	mustLoad(t, files, LoadOptions{})
	_, diags := load(t, files, LoadOptions{Vars: []VarArg{{Name: "min", Value: "5"}}})
	checkDiags(t, diags, []string{
		"main.llorch.hcl:5:21: Invalid value for variable: n must be at least min.\n\nThis was checked by the validation rule at main.llorch.hcl:4.",
	})
}

func TestMissingVariableDoesNotCascade(t *testing.T) {
	_, diags := load(t, map[string]string{"main.llorch.hcl": `variable "port" { type = number }
locals {
  p = var.port + 1
}
pool "chat" {
  engine = "llamacpp"
  port   = local.p
  model { ref = "file:/m-${var.port}.gguf" }
}`}, LoadOptions{})
	checkDiags(t, diags, []string{
		`main.llorch.hcl:1:1: No value for required variable: The variable "port" has no default value, so it must be set. Use -var 'port=VALUE', a -var-file, a *.auto.llorchvars.hcl file, or the LLORCH_VAR_port environment variable, or give the variable a default.`,
	})
}
