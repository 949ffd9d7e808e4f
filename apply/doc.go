// Package apply executes a plan: for every change, in parallel up to
// -parallelism, the provider prepares the engine (Ensure), a detached
// supervisor starts it and gates on its health, and the state is saved after
// every replica. It also holds the refresh that tells plan what is really
// running, and the one stop path that drain, replace and destroy share.
//
// Apply never leaves a half-known world behind: a failure is recorded on
// its replica (last_error) and returned with every other failure; an engine
// whose supervisor vanished is killed before its record is dropped.
package apply
