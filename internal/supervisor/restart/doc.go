// Package restart decides what a supervisor does after its engine exits:
// restart after a backoff, open the circuit breaker, or stop. A Tracker is a
// pure decision object in the shape of Nomad's restart tracker, except that
// it is handed the time and a seeded random source instead of reading the
// wall clock, so its decisions are exact and testable without sleeping. It
// never sleeps, reads no clock and starts no goroutine: the caller waits.
package restart
