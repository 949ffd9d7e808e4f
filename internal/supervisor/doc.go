// Package supervisor keeps one replica's engine alive. `llorch supervise
// RUNDIR` runs Run in a small detached process that owns the engine as its
// child, so engines keep running and being supervised after `llorch apply`
// exits (as conmon and containerd-shim do). Its control surface (status,
// drain, stop) is a small protocol over a 0600 unix socket, so that it can
// later run on other hosts.
package supervisor
