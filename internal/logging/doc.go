// Package logging builds llorch's hclog logger from the environment:
// LLORCH_LOG sets the level (trace, debug, info, warn, error, off; unset
// means off, so nothing is written) and LLORCH_LOG_PATH sends the log to a
// file instead, as TF_LOG and TF_LOG_PATH do for Terraform. Provider
// plugins read the same variables, so their logs follow llorch's.
package logging
