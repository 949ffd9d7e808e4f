// Package planfile reads and writes saved plans (`llorch plan -out=FILE`).
//
// A saved plan is one JSON file, mode 0600 because it holds the input
// variable values (as Terraform's plan files do), written atomically. It
// records what the plan was made against (state lineage and serial, the
// configuration hash), the options, variables, refresh observations and
// provider PlanPool results needed to replay it exactly (plan.Planner.Replay),
// and the rendered changes for `llorch show FILE`.
//
// Unlike Terraform's zip archive it is plain JSON: llorch plans are small,
// and a reviewer can read one without tools.
package planfile
