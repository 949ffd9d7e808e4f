package fakeengine

import (
	"reflect"
	"testing"
	"time"
)

func TestParseKnobs(t *testing.T) {
	defaults := knobs{
		loadDelay:  20 * time.Millisecond,
		exitCode:   1,
		crashTimes: -1,
	}
	tests := []struct {
		name string
		env  map[string]string
		want func(k *knobs)
	}{
		{"nothing set gives the defaults", nil, func(k *knobs) {}},
		{"every knob set", map[string]string{
			"FAKE_LOAD_DELAY":       "150ms",
			"FAKE_HANG_LOAD":        "1",
			"FAKE_CRASH_ON_START":   "true",
			"FAKE_CRASH_AFTER":      "0s",
			"FAKE_EXIT_CODE":        "139",
			"FAKE_CRASH_TIMES":      "2",
			"FAKE_COUNTER_FILE":     "/tmp/c",
			"FAKE_IGNORE_SIGTERM":   "1",
			"FAKE_UNHEALTHY_AFTER":  "2s",
			"FAKE_REQUEST_DELAY":    "1m",
			"FAKE_INFLIGHT":         "3",
			"FAKE_VERSION_OUTPUT":   "version: 4748 (c392e5094)",
			"FAKE_SKIP_MODEL_CHECK": "1",
			"FAKE_PID_FILE":         "/tmp/p",
		}, func(k *knobs) {
			*k = knobs{
				loadDelay: 150 * time.Millisecond, hangLoad: true, crashOnStart: true,
				crashAfter: 0, crashAfterSet: true, exitCode: 139, crashTimes: 2, counterFile: "/tmp/c",
				ignoreSigterm: true, unhealthyAfter: 2 * time.Second, unhealthySet: true,
				requestDelay: time.Minute, inflight: 3, versionOutput: "version: 4748 (c392e5094)",
				skipModelCheck: true, pidFile: "/tmp/p",
			}
		}},
		{"0 turns a switch off", map[string]string{"FAKE_IGNORE_SIGTERM": "0"}, func(k *knobs) {}},
		{"a counter file alone only counts", map[string]string{"FAKE_COUNTER_FILE": "/tmp/c"}, func(k *knobs) { k.counterFile = "/tmp/c" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKnobs(envFunc(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parseKnobs\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseKnobsRejectsBadValues(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"FAKE_LOAD_DELAY": "soon"}, `error: FAKE_LOAD_DELAY="soon" is not a duration: want Go syntax such as 150ms or 2s`},
		{map[string]string{"FAKE_REQUEST_DELAY": "5"}, `error: FAKE_REQUEST_DELAY="5" is not a duration: want Go syntax such as 150ms or 2s`},
		{map[string]string{"FAKE_CRASH_AFTER": "-1s"}, `error: FAKE_CRASH_AFTER="-1s" is negative`},
		{map[string]string{"FAKE_HANG_LOAD": "yes"}, `error: FAKE_HANG_LOAD="yes" is not a boolean: want 1 or 0`},
		{map[string]string{"FAKE_EXIT_CODE": "256"}, `error: FAKE_EXIT_CODE="256" is not a whole number from 0 to 255`},
		{map[string]string{"FAKE_INFLIGHT": "-1"}, `error: FAKE_INFLIGHT="-1" is not a whole number from 0 to 65536`},
		{map[string]string{"FAKE_CRASH_TIMES": "2"}, `error: FAKE_CRASH_TIMES=2 needs FAKE_COUNTER_FILE to count starts: set it to a file path`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, err := parseKnobs(envFunc(tc.env))
			if err == nil || err.Error() != tc.want {
				t.Errorf("parseKnobs(%v) error\n got %v\nwant %s", tc.env, err, tc.want)
			}
		})
	}
}
