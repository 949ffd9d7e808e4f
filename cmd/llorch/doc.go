// Command llorch reconciles pools of local LLM inference engines with their
// HCL description: init, validate, fmt, plan, apply, destroy, show, state,
// force-unlock, status, logs, drain, providers and version.
//
// This package only wires flags to library calls and turns their errors
// into diagnostics that say what was wrong, where, and what to do; the work
// is done by config, state, plan, apply and providers.
package main
