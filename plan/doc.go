// Package plan decides what llorch must do: it compares the desired pools
// (the configuration, evaluated and planned by each pool's provider) with the
// pools recorded in state and with what refresh observed of the live
// replicas, and produces a Plan of create, update, replace, delete and
// restart changes.
//
// The work is split as in OpenTofu: a Planner gathers the inputs (it decodes
// provider blocks against the provider's schema, calls ValidatePool and
// PlanPool, and refreshes replicas through a Refresher), and Diff, a pure
// function with no I/O and no clock, turns those inputs into the Plan. The
// same inputs always give the same Plan, which is what makes saved plans
// replayable (Planner.Replay) and plan output golden-testable.
//
// Sensitive values (schema attributes marked Sensitive, and values that came
// from sensitive variables) are replaced by "sha256:<hex>" of their JSON in
// every Spec the plan holds, so nothing derived from a Plan can leak them.
package plan
