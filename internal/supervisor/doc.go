// Package supervisor keeps one replica's engine alive. `llorch supervise
// RUNDIR` runs Run in a small detached process that owns the engine as its
// child, so engines keep running and being supervised after `llorch apply`
// exits (as conmon and containerd-shim do). Its control surface (status,
// drain, stop) is a small protocol over a 0600 unix socket, so that it can
// later run on other hosts.
//
// One goroutine owns a supervisor's state (llama-swap's run()); spawns,
// probe results, exits, timers and socket requests reach it as messages,
// and every state change is written atomically to status.json, sent to
// socket watchers and, during the launch, to the launcher's status pipe.
// Restart decisions come from package restart; all time comes from an
// injected clock.Clock. Run's doc comment draws the state machine and
// stopEngine's lists the stop sequence.
//
// Readiness is polled every health interval, and while the engine starts
// each chunk of its output is also an event that triggers a probe at once
// (llama-server logs as it finishes loading), coalesced to one probe in
// flight and one triggered probe per 5ms. Settings (health, restart, drain,
// labels) change in place through the socket's update op, without
// restarting the engine; supervisor.update lists when each takes effect.
// Status records the engine's start time from /proc, so EngineAlive and
// KillEngine can tell a leftover engine of a vanished supervisor from an
// unrelated process that reused its pid.
//
// A run directory holds spec.json (input, 0600), status.json,
// supervisor.pid, engine.pid, engine.log (the engine's output, rotated),
// supervisor.log (written by the launcher's redirect) and supervisor.sock;
// when the directory's path is too long for a unix socket address, the
// socket lives in a private directory under os.TempDir and RUNDIR/socket
// names it.
//
// Departures from the proposed layout: the engine invocation type is Cmd,
// not Command, because Command is the `llorch supervise` entry point; the
// first start is the launcher's health gate, so its failure fails the
// replica at once instead of entering the restart loop behind the launcher.
package supervisor
