package apply

import (
	"reflect"
	"testing"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/llamacpp"
)

// TestLlamacppProtocolIsWhatOldPluginsGet: a plugin that describes no
// protocol is supervised as llama-server (supervisor.LegacyProtocol). The
// llamacpp provider now states llama-server's protocol itself; they must
// agree but for the one thing llamacpp adds, the second SIGTERM that ends
// an engine still waiting for its clients.
func TestLlamacppProtocolIsWhatOldPluginsGet(t *testing.T) {
	got := supervisorProtocol(llamacpp.EngineProtocol("/m/a.gguf"))
	want := supervisor.LegacyProtocol("/m/a.gguf")
	want.RepeatStopForcesExit = true
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("llamacpp's protocol, as the supervisor gets it:\n %+v\nlegacy:\n %+v", *got, want)
	}
	if supervisorProtocol(nil) != nil {
		t.Fatal("no protocol from the provider must stay nil in the spec (the supervisor's legacy default)")
	}
}

func TestProviderProtocolMistakesAreNamed(t *testing.T) {
	tests := []struct {
		p    providers.EngineProtocol
		want string
	}{
		{providers.EngineProtocol{Identity: &providers.IdentityProbe{Path: "props"}},
			`the engine protocol it returned is invalid: identity path "props" does not start with /; identity has no field`},
		{providers.EngineProtocol{InFlight: []providers.InFlightProbe{{Path: "/m"}, {Path: "/s", CountTrue: "x", Gauges: []string{"g"}}}},
			`the engine protocol it returned is invalid: in_flight[0] sets neither; it needs exactly one of CountTrue and Gauges; in_flight[1] sets both; it needs exactly one of CountTrue and Gauges`},
		{providers.EngineProtocol{Completion: &providers.CompletionProbe{Path: "/c"}, Readiness: providers.Readiness{Ready: []int{2000}}},
			`the engine protocol it returned is invalid: readiness status 2000 is not an HTTP status; completion needs PromptField and TextField`},
		{providers.EngineProtocol{LogCauses: []providers.LogCause{{Cause: "oom", Contains: []string{"x"}}, {Cause: "bad_argument"}}},
			`the engine protocol it returned is invalid: log_causes[0] names cause "oom", not one of port_in_use, model_load_failed, out_of_memory, bad_argument; log_causes[1] needs non-empty lines to look for`},
		{providers.EngineProtocol{Stop: providers.StopBehaviour{Signal: "SIGKILL"}},
			`the engine protocol it returned is invalid: stop signal "SIGKILL" is not one of SIGTERM, SIGINT, SIGQUIT, SIGHUP`},
	}
	for _, tc := range tests {
		if err := tc.p.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("Validate(%+v) = %v\nwant %s", tc.p, err, tc.want)
		}
	}
	if err := llamacpp.EngineProtocol("/m").Validate(); err != nil {
		t.Errorf("llamacpp's own protocol: %v", err)
	}
}
