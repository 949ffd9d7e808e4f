// Package local is the default state.Store: the registry lives in
// <state_dir>/state.json on an afero.Fs, beside state.json.backup (the
// previous version) and state.lock.
//
// Writes are atomic and all-or-nothing: the new state and the new backup are
// both written and synced before either is renamed into place, and if the
// last rename fails the old backup is put back. A write that fails for any
// reason dumps the state to errored.state.json, so what a command did is
// never lost.
//
// The lock is an flock on state.lock when the filesystem is the OS one, so a
// killed process never leaves it held; its holder's info is written into the
// file for whoever finds it taken. Any other afero.Fs (tests) gets an
// in-process lock table with the same behaviour. The lock file itself is never
// removed: deleting a file others may have open and be waiting on would let
// two processes hold "the" lock at once. flock(2) comes from
// golang.org/x/sys/unix, so the package builds on Unix systems only, as the
// supervisor does.
package local
