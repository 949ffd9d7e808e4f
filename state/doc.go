// Package state is llorch's registry: the pools it manages and the replicas
// it runs (State), the rules that keep that record trustworthy (a lineage fixed
// at creation, a serial that grows on every write, a format version this build
// refuses to read past), and the Store interface every backend implements.
//
// The package does no I/O, but for naming a lock's holder
// (LockInfo.WithDefaults). Encode and Decode turn a State into the bytes of
// a state file and back. NextSerial and PushSerial are the rules of what may
// replace a stored state, which every backend applies: state/local stores
// the bytes in <state_dir>/state.json with a lock file beside it, state/etcd
// in etcd, and state/statetest holds both to the same behaviour. Types, format and storage are split as in
// OpenTofu's states, statefile and statemgr, except that the format lives here
// with the types: it is two functions, not worth a package of its own. Decode
// reads the files Encode writes without reflection (a thousand pools are
// megabytes, read on every plan) and leaves anything else to encoding/json,
// which also words the errors.
package state
