package supervisor

import "strings"

// Cause classifies why an engine ended, from its exit and its last log
// lines; status and plan show it with the line that proved it.
type Cause string

const (
	CausePortInUse       Cause = "port_in_use"       // could not bind its port
	CauseModelLoadFailed Cause = "model_load_failed" // the model file is missing, unreadable or not a model
	CauseOutOfMemory     Cause = "out_of_memory"     // a CUDA/Metal/Vulkan/host allocation failed
	CauseBadArgument     Cause = "bad_argument"      // an unknown or invalid flag
	CauseCrashed         Cause = "crashed"           // anything else
)

// Configuration reports whether restarting cannot help until the
// configuration (or the machine) changes: the breaker then opens at once
// instead of restart-looping.
func (c Cause) Configuration() bool {
	return c == CauseModelLoadFailed || c == CauseOutOfMemory || c == CauseBadArgument
}

// causeLines are what any engine logs for a cause, whatever it is: the
// GPU runtimes' and C++'s allocation failures, and the errno text of a
// port that is taken. An engine's own lines come from its protocol
// (LogCauses), and are tried first.
var causeLines = []struct {
	cause Cause
	lines []string
}{
	{CauseOutOfMemory, []string{
		"out of memory", "cudamalloc failed", "failed to allocate", "unable to allocate",
		"erroroutofdevicememory", "erroroutofhostmemory", "std::bad_alloc",
	}},
	{CausePortInUse, []string{"address already in use"}},
}

// llamaServerCauses are llama-server's own lines for each cause, in the
// order they are tried: an allocation failure during load also logs
// "failed to load model", so memory comes first (LegacyProtocol; the
// llamacpp provider states the same).
var llamaServerCauses = []LogCause{
	{CauseOutOfMemory, []string{"out of memory", "cudamalloc failed", "failed to allocate", "unable to allocate",
		"erroroutofdevicememory", "erroroutofhostmemory", "std::bad_alloc"}},
	{CauseBadArgument, []string{"error: invalid argument", "unknown argument", "error: unknown option", "invalid value for"}},
	{CausePortInUse, []string{"couldn't bind HTTP server socket", "address already in use"}},
	{CauseModelLoadFailed, []string{"failed to load model", "exiting due to model loading error", "error loading model",
		"failed to open gguf file", "invalid magic characters"}},
}

// classify names the cause of an engine's end from its last log lines and
// returns the line that proves it ("" for CauseCrashed): the engine's own
// lines (its protocol's LogCauses) first, then causeLines.
func classify(tail []string, own []LogCause) (Cause, string) {
	for _, c := range own {
		if line, ok := findLine(tail, c.Contains); ok {
			return c.Cause, line
		}
	}
	for _, c := range causeLines {
		if line, ok := findLine(tail, c.lines); ok {
			return c.cause, line
		}
	}
	return CauseCrashed, ""
}

// findLine returns the first line of tail that contains any of wants,
// ignoring case.
func findLine(tail, wants []string) (string, bool) {
	for _, line := range tail {
		l := strings.ToLower(line)
		for _, want := range wants {
			if strings.Contains(l, strings.ToLower(want)) {
				return strings.TrimSpace(line), true
			}
		}
	}
	return "", false
}
