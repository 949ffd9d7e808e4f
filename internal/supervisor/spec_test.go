package supervisor

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"
)

func TestSpecWithDefaultsFillsOnlyZeroFields(t *testing.T) {
	got := Spec{Health: HealthPolicy{Interval: time.Second}}.WithDefaults()
	if got.Host != "127.0.0.1" || got.Health.Path != "/health" || got.Health.Interval != time.Second ||
		got.Health.StartTimeout != 120*time.Second || got.Health.LiveInterval != 5*time.Second || got.Health.Failures != 3 ||
		got.Restart.Policy != "always" || got.Drain.Deadline != 30*time.Second || got.StopGrace != 10*time.Second ||
		got.LogMaxBytes != 10<<20 || got.LogKeep != 3 {
		t.Fatalf("WithDefaults() = %+v", got)
	}
}

func TestSpecValidate(t *testing.T) {
	valid := Spec{Binary: "llama-server", Port: 8080, RunDir: "/run/x"}.WithDefaults()
	tests := []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{name: "valid", change: func(*Spec) {}},
		{name: "no binary", change: func(s *Spec) { s.Binary = "" }, want: "binary is empty: the spec must name the engine executable"},
		{name: "port out of range", change: func(s *Spec) { s.Port = 0 }, want: "port 0 is not between 1 and 65535"},
		{name: "no run dir", change: func(s *Spec) { s.RunDir = "" }, want: "run_dir is empty"},
		{name: "relative health path", change: func(s *Spec) { s.Health.Path = "health" }, want: `health path "health" must start with /`},
		{name: "negative interval", change: func(s *Spec) { s.Health.Interval = -time.Second }, want: "health interval is -1s; it must be positive"},
		{name: "negative grace", change: func(s *Spec) { s.StopGrace = -time.Second }, want: "stop grace is -1s; it must be positive"},
		{name: "bad restart policy", change: func(s *Spec) { s.Restart.Policy = "sometimes" }, want: `restart policy "sometimes" is not one of "always", "on-failure" or "never"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := valid
			tc.change(&s)
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReadSpec(t *testing.T) {
	fs := afero.NewMemMapFs()
	_ = afero.WriteFile(fs, "/run/good/spec.json", []byte(`{"addr":"pool.a/r0","binary":"x","port":9000,"run_dir":"/elsewhere"}`), 0o600)
	_ = afero.WriteFile(fs, "/run/bad/spec.json", []byte(`{"addr":`), 0o600)

	s, err := ReadSpec(fs, "/run/good")
	if err != nil || s.Addr != "pool.a/r0" || s.Port != 9000 || s.RunDir != "/run/good" {
		t.Fatalf("ReadSpec = %+v, %v; want the spec with run_dir set to the directory given", s, err)
	}
	if _, err := ReadSpec(fs, "/run/bad"); err == nil || !strings.HasPrefix(err.Error(), "supervisor spec /run/bad/spec.json is not valid JSON: ") {
		t.Fatalf("ReadSpec(bad) = %v", err)
	}
	if _, err := ReadSpec(fs, "/run/none"); err == nil || !strings.HasPrefix(err.Error(), "no supervisor spec at /run/none/spec.json: ") {
		t.Fatalf("ReadSpec(missing) = %v", err)
	}
}

func TestReadStatus(t *testing.T) {
	fs := afero.NewMemMapFs()
	_ = afero.WriteFile(fs, "/run/a/status.json", []byte(`{"addr":"pool.a/r0","state":"ready","pid":42,"restarts":2}`), 0o644)
	_ = afero.WriteFile(fs, "/run/b/status.json", []byte(`nope`), 0o644)
	st, err := ReadStatus(fs, "/run/a")
	if err != nil || st.State != Ready || st.PID != 42 || st.Restarts != 2 {
		t.Fatalf("ReadStatus = %+v, %v", st, err)
	}
	if _, err := ReadStatus(fs, "/run/b"); err == nil || !strings.HasPrefix(err.Error(), "supervisor status /run/b/status.json is not valid JSON: ") {
		t.Fatalf("ReadStatus(corrupt) = %v", err)
	}
	if _, err := ReadStatus(fs, "/run/c"); err == nil || !strings.HasPrefix(err.Error(), "reading supervisor status: ") {
		t.Fatalf("ReadStatus(missing) = %v", err)
	}
}
