// Package agent is llorch on a GPU machine: `llorch agent -data-dir DIR`
// run over an SSH session (StartAgent), answering the machine's questions
// and doing its work for the llorch that started it, so that refreshing a
// machine is one round trip on a connection already made, not a command
// per replica.
//
// The protocol is newline-delimited JSON on the session's stdin and
// stdout. Each side first sends a hello with ProtocolVersion and its
// llorch version and build, and refuses a peer speaking another protocol
// version with an error naming both. Then the client sends requests, each
// with an id that its answer carries; several may be in flight, and the
// agent answers each when it is done (a launch takes as long as the
// engine's health gate, a status a few milliseconds):
//
//	status    every run directory under DATA_DIR/run: its supervisor's
//	          recorded status and whether that supervisor runs, in one
//	          answer (the refresh of a whole machine)
//	launch    a supervisor.Spec, launched with supervisor.ExecLauncher on
//	          the machine; the answer is the first ready status, or the
//	          launcher's error with the engine's last log lines
//	stop      a run directory's supervisor and engine
//	drain     a run directory's replica, then its engine stops
//	handoffs  the handoff file of every run directory's spec
//	cancel    abandons request id: its context is cancelled (a launch in
//	          progress stops its supervisor); no answer follows
//
// A run directory the client names must be DATA_DIR/run/NAME, so that
// what status reports is all the agent started.
//
// Supervisors are started in sessions of their own (ExecLauncher), and
// sshd sends no SIGHUP to commands run without a terminal, so they outlive
// the agent and the SSH connection; the next agent finds them through
// their run directories.
//
// The binary StartAgent uploads goes to DATA_DIR/bin/llorch-SHA/llorch
// (SHA: the first 16 hex digits of its sha256) rather than the file
// llorch-SHA: a build never overwrites another that may still be running
// supervisors, and the program keeps the name llorch, on which test
// binaries dispatch (testscript) and beside which supervisor.Program looks
// for llorch-supervisor.
package agent
