// Package render shows a plan.Plan to people and to programs: Human writes
// the Terraform-like text (`+ - ~ +/- -/+` symbols, attribute diffs,
// "# forces replacement", the summary line) and JSON writes the one-document
// form of `llorch plan -json`.
//
// Neither ever prints a secret: a Plan only holds hashes of sensitive values,
// and Human shows them as (sensitive value).
package render
