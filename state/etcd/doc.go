// Package etcd is the state.Store for teams and CI: the registry lives in
// etcd under a key prefix, so every machine that reaches the cluster shares
// one state and one lock.
//
// Keys under the prefix P:
//
//	P lock                       the lock: the holder's LockInfo, attached to its lease
//	P state                      the header: lineage, serial, and where the current
//	                             and the previous (backup) state are stored
//	P state/<serial>/<part>      a stored state: state.Encode's bytes, gzipped, cut in parts
//
// The lock is a key created only if absent and attached to a lease that the
// holder keeps alive (a concurrency.Session): kill -9 the holder, or cut it
// off, and the lease expires within lock_ttl, deleting the key. The key
// carries the holder's info, so one transaction takes the lock and, when
// held, tells who holds it; concurrency.Mutex queues waiters under keys
// without values, which would take a second key and round trip for that.
// A waiter (-lock-timeout) watches the key for its deletion.
//
// Every write is fenced: the transaction that stores the header also
// checks that the lock key is still the one this Store created (its create
// revision) and that the header is still the one it read (its mod
// revision), so a holder whose lease expired, or a writer that read an
// older serial, can never overwrite a newer state; it stops with a clear
// error and dumps the state to errored.state.json. The serial rules are
// state.NextSerial and state.PushSerial, as for every backend.
//
// A state is stored under its own serial and the header switches to it in
// the fenced transaction, which also deletes states older than the one it
// replaces: that one is kept as the backup. A state whose parts do not fit
// in one request (etcd refuses requests over 1.5 MiB by default) is staged
// in earlier fenced transactions before the header switches, and a reader
// reads the header and the parts at one revision, so it never sees half a
// write. A thousand pools (about 2.6 MB of JSON) gzip to a few hundred KB:
// one part, one transaction.
//
// Every request has a timeout: the dial timeout until etcd has answered
// once, then the request timeout. A backend that does not answer is an
// error naming the endpoints and what dialling them says; after a failed
// write the Store is lost (Lost): later writes fail at once and are dumped,
// and apply stops starting work it could not record.
package etcd
