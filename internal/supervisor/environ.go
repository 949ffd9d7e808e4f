package supervisor

import "strings"

// baseEnvKeys are the variables of llorch's own environment that
// supervisors and engines keep: what finding programs and libraries, the
// user's home, the locale and the time zone need. Everything else (CI
// secrets, a runner's RUNNER_TRACKING_ID that marks processes to kill at
// the end of a job, LLORCH_VAR_* values) stays with the command that was
// run. What an engine needs beyond this comes from its pool's env, the
// provider's PreparedEngine.Env and what llorch sets (device masks, the
// API key), all in Spec.Env.
var baseEnvKeys = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true,
	"LD_LIBRARY_PATH": true, // where CUDA and other engine libraries are found
}

// supervisorEnvKeys are kept for the supervisor process only: its log
// level and the Go runtime's own knobs.
var supervisorEnvKeys = map[string]bool{
	"LLORCH_LOG": true,
	"GORACE":     true, "GOCOVERDIR": true, "GOTRACEBACK": true, "GODEBUG": true,
	"GOMAXPROCS": true, "GOGC": true, "GOMEMLIMIT": true,
}

// EngineEnviron is the part of env an engine inherits.
func EngineEnviron(env []string) []string {
	return filterEnv(env, nil)
}

// SupervisorEnviron is the part of env a supervisor is started with.
func SupervisorEnviron(env []string) []string {
	return filterEnv(env, supervisorEnvKeys)
}

func filterEnv(env []string, extra map[string]bool) []string {
	out := make([]string, 0, len(baseEnvKeys)+len(extra))
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if baseEnvKeys[k] || extra[k] || strings.HasPrefix(k, "LC_") {
			out = append(out, kv)
		}
	}
	return out
}
