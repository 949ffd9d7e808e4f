package providers

import (
	"fmt"
	"slices"
	"strings"
)

// EngineProtocol tells the supervisor how to talk to one kind of engine:
// how readiness looks, how to prove that the server answering on a
// replica's port is the engine it spawned, how to see requests in flight
// while draining, how to ask for a completion (health { smoke }), and how
// the engine wants to be stopped. The supervisor itself knows no engine;
// each provider describes its own, as a Nomad task driver declares what
// it can do.
//
// A PreparedEngine without one (a plugin written before EngineProtocol)
// is supervised as llama-server, which is what llorch assumed before
// providers described their engines.
type EngineProtocol struct {
	Readiness Readiness
	// Identity is nil when the engine cannot say which model it serves:
	// the supervisor then checks only that the listening socket belongs to
	// the engine's process group.
	Identity *IdentityProbe
	// InFlight lists ways to count requests in flight, tried in order until
	// one answers. Empty: the engine cannot tell, and a drain waits out its
	// deadline.
	InFlight []InFlightProbe
	// Completion is nil when the engine has no completion endpoint the
	// supervisor can call: a pool with health { smoke } then fails to start
	// with a message saying so.
	Completion *CompletionProbe
	Stop       StopBehaviour
	// LogCauses are lines of the engine's own log that prove why it ended
	// (vLLM's argparse "unrecognized arguments" is a bad argument), tried
	// before the lines llorch knows (llama-server's, and CUDA, Metal and
	// Vulkan allocation failures). A configuration cause opens the
	// restart breaker at once instead of restart-looping.
	LogCauses []LogCause
}

// LogCause: a log line containing any of Contains (case-insensitive)
// proves Cause, one of ExitCauses.
type LogCause struct {
	Cause    string
	Contains []string
}

// ExitCauses are the causes LogCause may name: a port another process
// holds (transient: restarts back off), and three configuration causes.
var ExitCauses = []string{"port_in_use", "model_load_failed", "out_of_memory", "bad_argument"}

// Readiness says how the health path (PreparedEngine.HealthPath) answers.
type Readiness struct {
	// Ready lists the statuses that mean ready; empty means 200.
	Ready []int
	// Loading lists the statuses an engine answers while it loads its
	// model (llama-server: 503 "Loading model"). Any other answer while
	// starting is waited out as well, but the start-timeout error says it
	// was neither, which usually means a wrong health path.
	Loading []int
}

// IdentityProbe proves which model the answering server has loaded: GET
// Path, read the JSON value at Field, and compare it with Expect. When
// both are absolute paths they match when they name the same file.
type IdentityProbe struct {
	Path   string // "/props"
	Field  string // a JSONPath-like dotted path into the answer: "model_path", "data.0.root"
	Expect string // the model the engine must serve, usually PreparedEngine.ModelPath
}

// InFlightProbe counts requests in flight. Exactly one of CountTrue and
// Gauges is set.
type InFlightProbe struct {
	Path string // "/slots", "/metrics"
	// CountTrue: the answer is a JSON array and the count is the number of
	// its elements whose CountTrue field is true (llama-server's /slots
	// "is_processing").
	CountTrue string
	// Gauges: the answer is Prometheus text and the count is the sum of
	// these gauges over all their label sets
	// ("vllm:num_requests_running", "vllm:num_requests_waiting").
	Gauges []string
}

// CompletionProbe is how the smoke check asks for a completion: POST Path
// a JSON object holding Fixed, the prompt under PromptField and the token
// budget under MaxTokensField; the text is the string at TextField of the
// answer (a dotted path, as for IdentityProbe).
type CompletionProbe struct {
	Path           string            // "/completion", "/v1/completions"
	PromptField    string            // "prompt"
	MaxTokensField string            // "n_predict", "max_tokens"
	Fixed          map[string]string // more string fields, e.g. {"model": "Qwen/Qwen2.5-7B-Instruct"}
	TextField      string            // "content", "choices.0.text"
}

// StopBehaviour is how the engine stops: Signal first, then, when it has
// not exited within the pool's kill_timeout, either Signal again (when
// RepeatForcesExit: the engine exits at once on a second signal, and gets
// one more second to do so) or SIGKILL.
type StopBehaviour struct {
	Signal           string // "SIGTERM" (the default), "SIGINT", "SIGQUIT"
	RepeatForcesExit bool
}

// StopSignals are the signals StopBehaviour.Signal may name.
var StopSignals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"}

// Validate reports what in a provider's EngineProtocol the supervisor
// could not follow; core checks it after Ensure, so that a provider's
// mistake fails the apply with its name rather than a replica later.
func (p *EngineProtocol) Validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	path := func(what, v string) {
		if !strings.HasPrefix(v, "/") {
			bad("%s path %q does not start with /", what, v)
		}
	}
	for _, c := range append(slices.Clone(p.Readiness.Ready), p.Readiness.Loading...) {
		if c < 100 || c > 599 {
			bad("readiness status %d is not an HTTP status", c)
		}
	}
	if id := p.Identity; id != nil {
		path("identity", id.Path)
		if id.Field == "" {
			bad("identity has no field")
		}
	}
	for i, f := range p.InFlight {
		path(fmt.Sprintf("in_flight[%d]", i), f.Path)
		if (f.CountTrue == "") == (len(f.Gauges) == 0) {
			bad("in_flight[%d] sets %s; it needs exactly one of CountTrue and Gauges", i,
				map[bool]string{true: "neither", false: "both"}[f.CountTrue == ""])
		}
	}
	if c := p.Completion; c != nil {
		path("completion", c.Path)
		if c.PromptField == "" || c.TextField == "" {
			bad("completion needs PromptField and TextField")
		}
	}
	for i, c := range p.LogCauses {
		if !slices.Contains(ExitCauses, c.Cause) {
			bad("log_causes[%d] names cause %q, not one of %s", i, c.Cause, strings.Join(ExitCauses, ", "))
		}
		if slices.Contains(c.Contains, "") || len(c.Contains) == 0 {
			bad("log_causes[%d] needs non-empty lines to look for", i)
		}
	}
	if s := p.Stop.Signal; s != "" && !slices.Contains(StopSignals, s) {
		bad("stop signal %q is not one of %s", s, strings.Join(StopSignals, ", "))
	}
	if len(problems) > 0 {
		return fmt.Errorf("the engine protocol it returned is invalid: %s", strings.Join(problems, "; "))
	}
	return nil
}
