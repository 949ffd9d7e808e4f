package supervisor

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// statusSamples are statuses as supervisors write them (MarshalIndent).
func statusSamples() []Status {
	t0 := time.Date(2026, 11, 27, 8, 14, 14, 367187756, time.UTC)
	return []Status{
		{},
		{Addr: "pool.p0000/r0", State: Ready, PID: 3922, SupervisorPID: 3915, Port: 20000,
			StartedAt: t0, ReadyAt: t0.Add(53 * time.Millisecond), UpdatedAt: t0.Add(time.Second), EngineStartTicks: 1650989},
		{Addr: "pool.chat[\"a\"]/r1", State: Backoff, Restarts: 3, LastError: "exit status 1: \"bad flag\"\n\tline 2 ✗",
			NextRestartAt: t0.Add(4 * time.Second), UpdatedAt: t0},
		{Addr: "pool.x/r0", State: Failed, LastError: "not ready after 2m0s", UpdatedAt: t0.In(time.FixedZone("", -7*3600))},
	}
}

func TestDecodeStatusReadsWhatSupervisorsWrite(t *testing.T) {
	for _, want := range statusSamples() {
		b, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeStatus(b)
		if err != nil {
			t.Fatalf("decodeStatus(%s): %v", b, err)
		}
		var std Status
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, std) {
			t.Errorf("decodeStatus(%s)\n = %+v\nencoding/json gives %+v", b, got, std)
		}
	}
}

// The direct reader is used only when it gives what encoding/json gives;
// these take the other road, and must still decode (or fail) the same.
func TestDecodeStatusLeavesTheUnusualToEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"ADDR":"pool.a/r0"}`,                  // keys match case-insensitively in encoding/json
		`{"pid":1,"pid":2}`,                     // the last one wins
		`{"pid":1.0}`,                           // not an integer: an error
		`{"addr":null,"pid":null}`,              // null leaves the zero value
		`{"updated_at":"2026-11-27 08:14:14Z"}`, // not RFC 3339: an error
		`{"updated_at":"2026-11-27T08:14:14,5Z"}`,
		`{"engine_start_ticks":18446744073709551615}`,
		`{"addr":"p\u00e9"}`,
		`{"extra":{"nested":[1,2]},"pid":7}`,
		`{"pid":7} trailing`,
		``,
	} {
		got, gotErr := decodeStatus([]byte(in))
		var want Status
		wantErr := json.Unmarshal([]byte(in), &want)
		if (gotErr == nil) != (wantErr == nil) || (gotErr == nil && !reflect.DeepEqual(got, want)) {
			t.Errorf("decodeStatus(%s) = %+v, %v; encoding/json gives %+v, %v", in, got, gotErr, want, wantErr)
		}
	}
}

func FuzzDecodeStatus(f *testing.F) {
	for _, st := range statusSamples() {
		b, _ := json.MarshalIndent(st, "", "  ")
		f.Add(b)
	}
	f.Add([]byte(`{"pid":-0,"port":00,"updated_at":"2026-11-27T08:14:14.Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := decodeStatus(b)
		var want Status
		wantErr := json.Unmarshal(b, &want)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("decodeStatus(%q) error %v, encoding/json error %v", b, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeStatus(%q)\n = %+v\nencoding/json gives %+v", b, got, want)
		}
	})
}

func BenchmarkDecodeStatus(b *testing.B) {
	data, _ := json.MarshalIndent(statusSamples()[1], "", "  ")
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeStatus(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			var st Status
			if err := json.Unmarshal(data, &st); err != nil {
				b.Fatal(err)
			}
		}
	})
}
