package fakeengine

import (
	"bytes"
	"context"
	"testing"
)

func TestRunAnswersWithoutServing(t *testing.T) {
	tests := []struct {
		name               string
		args               []string
		env                map[string]string
		code               int
		wantOut, wantError string
	}{
		{"--version", []string{"--version"}, nil, 0, "", "version: 0.2.0-dev (build 10573, commit d775b8967)\n"},
		{"--version with FAKE_VERSION_OUTPUT", []string{"--version"}, map[string]string{"FAKE_VERSION_OUTPUT": "version: 4748 (c392e5094)"}, 0, "", "version: 4748 (c392e5094)\n"},
		{"--list-devices on a CPU-only build", []string{"--list-devices"}, nil, 0, "Available devices:\n", ""},
		{"unknown flag", []string{"-m", "x.gguf", "--foo"}, nil, 1, "", "error: invalid argument: --foo\n"},
		{"missing value", []string{"-m"}, nil, 1, "", "error while handling argument \"-m\": expected value for argument\n"},
		{"bad knob", []string{"--version"}, map[string]string{"FAKE_INFLIGHT": "lots"}, 1, "", "error: FAKE_INFLIGHT=\"lots\" is not a whole number from 0 to 65536\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(t.Context(), tc.args, envFunc(tc.env), &stdout, &stderr)
			if code != tc.code || stdout.String() != tc.wantOut || stderr.String() != tc.wantError {
				t.Errorf("Run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.wantOut, tc.wantError)
			}
		})
	}
}

func TestRunTreatsCancellationAsSIGTERM(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		waitFor string
		want    int
	}{
		{"idle server exits 0", map[string]string{"FAKE_LOAD_DELAY": "0s"}, "starting the main loop", 0},
		{"loading server dies as by SIGTERM", map[string]string{"FAKE_HANG_LOAD": "1"}, "never finishes loading", 143},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			stderr := newLogBuffer()
			code := make(chan int, 1)
			go func() {
				code <- Run(ctx, []string{"-m", tinyModel, "--port", "0"}, envFunc(tc.env), &bytes.Buffer{}, stderr)
			}()
			if _, err := stderr.waitFor(boundedCtx(t), tc.waitFor, 1); err != nil {
				cancel()
				<-code
				t.Fatal(err)
			}
			cancel()
			if got := receive(t, code); got != tc.want {
				t.Errorf("Run returned %d after cancellation, want %d; log:\n%s", got, tc.want, stderr.String())
			}
		})
	}
}
