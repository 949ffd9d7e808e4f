package supervisor

import (
	"strings"
	"testing"
	"time"
)

// With a smoke block, /health's 200 is not enough: the replica is ready
// once a real completion matches, and a completion that does not match
// is a failed start whose error holds the engine's answer.
func TestSmokeCompletionGatesReadiness(t *testing.T) {
	t.Run("a matching completion makes it ready", func(t *testing.T) {
		spec := fakeSpec(t, nil)
		spec.Health.Smoke = &SmokePolicy{Prompt: "Say fake", NPredict: 2, Expect: `^( fake)+$`, Timeout: 5 * time.Second}
		r := startRun(t, spec)
		r.waitFor(t, "ready", isState(Ready))
	})
	t.Run("an answer that does not match fails the start", func(t *testing.T) {
		spec := fakeSpec(t, nil)
		spec.Restart.Policy = "never"
		spec.Health.Smoke = &SmokePolicy{Prompt: "The capital of France is", NPredict: 2, Expect: `(?i)paris`, Timeout: 5 * time.Second}
		r := startRun(t, spec)
		st, seen := r.waitFor(t, "failed", isState(Failed))
		for _, s := range seen {
			if s.State == Ready {
				t.Fatalf("became ready before the smoke completion matched: %+v", seen)
			}
		}
		want := `smoke completion of "The capital of France is" answered " fake fake", which does not match "(?i)paris"`
		if !strings.Contains(st.LastError, want) {
			t.Fatalf("last error %q\nwant it to contain %q", st.LastError, want)
		}
	})
	t.Run("no completion in time fails the start", func(t *testing.T) {
		spec := fakeSpec(t, map[string]string{"FAKE_REQUEST_DELAY": "1h"})
		spec.Restart.Policy = "never"
		spec.Health.Smoke = &SmokePolicy{Prompt: "hi", NPredict: 1, Timeout: 200 * time.Millisecond}
		r := startRun(t, spec)
		st, _ := r.waitFor(t, "failed", isState(Failed))
		if want := `smoke completion of "hi" failed: no completion within 200ms`; !strings.Contains(st.LastError, want) {
			t.Fatalf("last error %q\nwant it to contain %q", st.LastError, want)
		}
	})
}

func TestHTTPProberComplete(t *testing.T) {
	srv, _ := engineStub(t, map[string]answer{"/completion": {200, `{"content":" Paris.","tokens_predicted":2}`}})
	if got, err := NewHTTPProber().Complete(t.Context(), Target{BaseURL: srv.URL, Protocol: LegacyProtocol("")}, "The capital of France is", 2); err != nil || got != " Paris." {
		t.Fatalf("Complete = %q, %v", got, err)
	}
	srv, _ = engineStub(t, map[string]answer{"/completion": {503, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`}})
	if _, err := NewHTTPProber().Complete(t.Context(), Target{BaseURL: srv.URL, Protocol: LegacyProtocol("")}, "x", 1); err == nil || err.Error() != srv.URL+"/completion answered 503 Loading model" {
		t.Fatalf("Complete on a loading engine: %v", err)
	}
	srv, _ = engineStub(t, map[string]answer{"/completion": {200, `{"id":1}`}})
	if _, err := NewHTTPProber().Complete(t.Context(), Target{BaseURL: srv.URL, Protocol: LegacyProtocol("")}, "x", 1); err == nil || !strings.Contains(err.Error(), "answered 200 without a completion") {
		t.Fatalf("Complete without content: %v", err)
	}
}
