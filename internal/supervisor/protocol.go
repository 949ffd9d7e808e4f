package supervisor

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Protocol is how this supervisor talks to its engine, as the engine's
// provider described it (providers.EngineProtocol; apply copies it into
// spec.json). The supervisor knows no engine of its own: everything
// engine-specific it does comes from here.
type Protocol struct {
	// ReadyStatus lists health answers that mean ready (empty: 200);
	// LoadingStatus those an engine gives while it loads its model.
	ReadyStatus   []int `json:"ready_status,omitempty"`
	LoadingStatus []int `json:"loading_status,omitempty"`
	// Identity is nil when the engine cannot say what it serves.
	Identity *IdentityProbe `json:"identity,omitempty"`
	// InFlight is tried in order; empty: drains wait out their deadline.
	InFlight []InFlightProbe `json:"in_flight,omitempty"`
	// Completion is nil when the engine offers none for health { smoke }.
	Completion *CompletionProbe `json:"completion,omitempty"`
	// StopSignal starts a stop ("" = SIGTERM); RepeatStopForcesExit
	// sends it again when the grace period ends, before SIGKILL.
	StopSignal           string `json:"stop_signal,omitempty"`
	RepeatStopForcesExit bool   `json:"repeat_stop_forces_exit,omitempty"`
	// LogCauses are the engine's own log lines that prove a cause, tried
	// before the built-in causeLines.
	LogCauses []LogCause `json:"log_causes,omitempty"`
}

// LogCause: a log line containing any of Contains (case-insensitive)
// proves Cause.
type LogCause struct {
	Cause    Cause    `json:"cause"`
	Contains []string `json:"contains"`
}

// IdentityProbe: GET Path, the JSON value at Field must be Expect (the
// same file, when both are paths).
type IdentityProbe struct {
	Path   string `json:"path"`
	Field  string `json:"field"`
	Expect string `json:"expect"`
}

// InFlightProbe counts requests in flight: the elements of a JSON array
// whose CountTrue field is true, or the sum of Prometheus Gauges.
type InFlightProbe struct {
	Path      string   `json:"path"`
	CountTrue string   `json:"count_true,omitempty"`
	Gauges    []string `json:"gauges,omitempty"`
}

// CompletionProbe: POST Path {Fixed..., PromptField: prompt,
// MaxTokensField: n}; the text is the string at TextField.
type CompletionProbe struct {
	Path           string            `json:"path"`
	PromptField    string            `json:"prompt_field"`
	MaxTokensField string            `json:"max_tokens_field,omitempty"`
	Fixed          map[string]string `json:"fixed,omitempty"`
	TextField      string            `json:"text_field"`
}

// LegacyProtocol is llama-server's protocol as llorch spoke it before
// providers described their engines: the protocol of a spec.json that
// names none (written by an older llorch, or for a plugin that returns
// none). It is frozen here on purpose; the llamacpp provider states its
// own, which may move on with new llama-server builds.
func LegacyProtocol(modelPath string) Protocol {
	p := Protocol{
		ReadyStatus:   []int{200},
		LoadingStatus: []int{503},
		InFlight: []InFlightProbe{
			{Path: "/slots", CountTrue: "is_processing"},
			{Path: "/metrics", Gauges: []string{"llamacpp:requests_processing", "llamacpp:requests_deferred"}},
		},
		Completion: &CompletionProbe{Path: "/completion", PromptField: "prompt", MaxTokensField: "n_predict", TextField: "content"},
		StopSignal: "SIGTERM",
		LogCauses:  slices.Clone(llamaServerCauses),
	}
	if modelPath != "" {
		p.Identity = &IdentityProbe{Path: "/props", Field: "model_path", Expect: modelPath}
	}
	return p
}

// ready reports whether a health answer with this status means ready.
func (p Protocol) ready(code int) bool {
	if len(p.ReadyStatus) == 0 {
		return code == 200
	}
	return slices.Contains(p.ReadyStatus, code)
}

func (p Protocol) loading(code int) bool { return slices.Contains(p.LoadingStatus, code) }

// stopSignal is the signal that starts a stop.
func (p Protocol) stopSignal() syscall.Signal {
	switch p.StopSignal {
	case "SIGINT":
		return syscall.SIGINT
	case "SIGQUIT":
		return syscall.SIGQUIT
	case "SIGHUP":
		return syscall.SIGHUP
	}
	return syscall.SIGTERM
}

// jsonAt returns the value at a dotted path ("data.0.root") in a decoded
// JSON document: object keys by name, array elements by index.
func jsonAt(doc any, path string) (any, bool) {
	v := doc
	for step := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[step]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// jsonStringAt is jsonAt for a string value in raw JSON.
func jsonStringAt(body []byte, path string) (string, error) {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("the answer is not JSON: %.120q", body)
	}
	v, ok := jsonAt(doc, path)
	if !ok {
		return "", fmt.Errorf("the answer has no %s: %.200q", path, body)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("the answer's %s is not a string: %.200q", path, body)
	}
	return s, nil
}

// countTrue counts the elements of a JSON array whose field is true; ok
// is false when the answer is not such an array.
func countTrue(body []byte, field string) (n int, ok bool) {
	var elems []map[string]any
	if json.Unmarshal(body, &elems) != nil {
		return 0, false
	}
	for _, e := range elems {
		if b, _ := e[field].(bool); b {
			n++
		}
	}
	return n, true
}

// sumGauges adds the samples of the named gauges in Prometheus text
// exposition, over every label set ("vllm:num_requests_running{model_name=
// "x"} 1.0"); ok is false when none of them is present.
func sumGauges(body []byte, names []string) (n int, ok bool) {
	for line := range strings.SplitSeq(string(body), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := metricName(line)
		if !slices.Contains(names, name) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		ok = true
		if v > 0 {
			n += int(v)
		}
	}
	return n, ok
}

// metricName splits a sample line into its metric name and what follows
// its label set, skipping quoted label values that may hold braces.
func metricName(line string) (name, rest string) {
	end := strings.IndexAny(line, "{ \t")
	if end < 0 {
		return line, ""
	}
	name, rest = line[:end], line[end:]
	if rest[0] != '{' {
		return name, rest
	}
	quoted, escaped := false, false
	for i := 1; i < len(rest); i++ {
		switch c := rest[i]; {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == '}' && !quoted:
			return name, rest[i+1:]
		}
	}
	return name, ""
}
