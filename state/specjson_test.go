package state

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

func fullSpec() *Spec {
	return &Spec{
		Engine: "llamacpp", Replicas: 2,
		Model: ModelSpec{Ref: "hf:org/repo/m.gguf", SHA256: "abc"},
		Host:  "127.0.0.1", Port: 8080, Devices: []int{0, 1}, Ctx: 4096,
		Flags:  []string{"--parallel", "4"},
		Env:    map[string]string{"B": "2", "A": "1"},
		Labels: map[string]string{"team": "search"},
		Health: HealthSpec{Path: "/health", Interval: "100ms", StartTimeout: "2m0s", LiveInterval: "5s", Failures: 3},
		Restart: RestartSpec{Policy: "always", InitialBackoff: "1s", MaxBackoff: "1m0s", Multiplier: 2, Jitter: 0.1,
			ResetAfter: "5m0s", MaxFailures: 5, Cooldown: "5m0s"},
		Drain:    DrainSpec{Deadline: "30s", KillTimeout: "10s"},
		Update:   UpdateSpec{Strategy: "create_before_destroy"},
		Provider: json.RawMessage(`{ "threads": 8, "api_key": "sha256:<&>" }`),
	}
}

func checkSpecJSON(t *testing.T, name string, s *Spec) {
	t.Helper()
	want, wantErr := json.Marshal(s)
	got, err := s.AppendJSON(nil)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s: AppendJSON error %v; json.Marshal error %v", name, err, wantErr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Errorf("%s: AppendJSON =\n%s\njson.Marshal =\n%s", name, got, want)
	}
}

func TestSpecAppendJSONIsJSONMarshal(t *testing.T) {
	cases := map[string]func(s *Spec){
		"full": func(*Spec) {},
		"zero": func(s *Spec) { *s = Spec{} },
		"empty, not nil": func(s *Spec) {
			s.Devices, s.Flags, s.Env, s.Labels = []int{}, []string{}, map[string]string{}, map[string]string{}
		},
		"no model digest": func(s *Spec) { s.Model.SHA256 = "" },
		"smoke": func(s *Spec) {
			s.Health.Smoke = &SmokeSpec{Prompt: "The capital of <France> is", NPredict: 4, Expect: "(?i)paris", Timeout: "20s"}
		},
		"smoke without expect": func(s *Spec) { s.Health.Smoke = &SmokeSpec{Prompt: "hi", NPredict: 1, Timeout: "1s"} },
		"escaped strings": func(s *Spec) {
			s.Flags = []string{"a\"b", "c\\d", "<tag>", "a&b", "tab\there", "\u2028", "é", "\x00", "\xff"}
		},
		"escaped map":            func(s *Spec) { s.Env = map[string]string{"K<": "v>", "é": "\n"} },
		"large and small floats": func(s *Spec) { s.Restart.Multiplier, s.Restart.Jitter = 1e21, 1e-7 },
		"negative zero":          func(s *Spec) { s.Restart.Jitter = math.Copysign(0, -1) },
		"float formats":          func(s *Spec) { s.Restart.Multiplier, s.Restart.Jitter = 123456789.125, 0.000001 },
		"NaN":                    func(s *Spec) { s.Restart.Jitter = math.NaN() },
		"bad provider JSON":      func(s *Spec) { s.Provider = json.RawMessage(`{"a":`) },
		"no provider":            func(s *Spec) { s.Provider = nil },
		"compact provider": func(s *Spec) {
			s.Provider = json.RawMessage(`{"api_key":null,"threads":8,"split":[1,2.5e3],"x":"a\\u003cb"}`)
		},
		"provider with spaces":   func(s *Spec) { s.Provider = json.RawMessage(`{"a":"b c"}`) },
		"provider trailing junk": func(s *Spec) { s.Provider = json.RawMessage(`{"a":1}x`) },
		"provider duplicate key": func(s *Spec) { s.Provider = json.RawMessage(`{"a":1,"a":2}`) },
		"provider bad number":    func(s *Spec) { s.Provider = json.RawMessage(`{"a":01}`) },
	}
	for name, edit := range cases {
		s := fullSpec()
		edit(s)
		checkSpecJSON(t, name, s)
	}
}

func FuzzSpecAppendJSON(f *testing.F) {
	f.Add("llamacpp", "hf:x", "/health", "--flag", "K", "v", 8080, 2.0, 0.1, `{"a":1}`)
	f.Add("é<", "\x00", "", "\u2028", "", "", -1, 1e22, 1e-9, `null`)
	f.Add("x", "y", "", "", "", "", 0, 1.0, 0.0, `{"a":[1,true,false,null,"s\\n"],"b":{}}`)
	f.Fuzz(func(t *testing.T, engine, ref, path, flag, key, val string, port int, mult, jitter float64, provider string) {
		s := fullSpec()
		s.Engine, s.Model.Ref, s.Health.Path, s.Port = engine, ref, path, port
		s.Flags = append(s.Flags, flag)
		s.Env[key] = val
		s.Restart.Multiplier, s.Restart.Jitter = mult, jitter
		s.Provider = json.RawMessage(provider)
		checkSpecJSON(t, "fuzzed", s)
	})
}

// BenchmarkSpecJSON compares AppendJSON with json.Marshal on a full spec
// with its provider block as plan records it.
func BenchmarkSpecJSON(b *testing.B) {
	s := fullSpec()
	s.Provider = json.RawMessage(`{"api_key":null,"n_gpu_layers":null,"parallel":4,"tensor_split":null,"threads":8}`)
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf [1024]byte
		for b.Loop() {
			if _, err := s.AppendJSON(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
