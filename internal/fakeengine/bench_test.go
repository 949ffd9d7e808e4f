package fakeengine

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// BenchmarkProcessStartToReady measures one whole life of the fake as a
// child process: exec, bind, "load" (FAKE_LOAD_DELAY=0s), log ready, then
// SIGTERM and exit. ready-ms is the exec-to-ready part alone.
func BenchmarkProcessStartToReady(b *testing.B) {
	var ready time.Duration
	for b.Loop() {
		start := time.Now()
		p := startProcess(b, []string{"-m", tinyModel, "--port", "0"}, "FAKE_LOAD_DELAY=0s")
		p.waitLog("starting the main loop")
		ready += time.Since(start)
		p.signal(syscall.SIGTERM)
		if ws := p.wait(); !ws.Exited() || ws.ExitStatus() != 0 {
			b.Fatalf("ended with %s", describe(ws))
		}
	}
	b.ReportMetric(float64(ready.Microseconds())/1000/float64(b.N), "ready-ms")
}

// BenchmarkHealth is one /health request against a ready server of each
// build, over a kept-alive connection and over a fresh one each time. On
// build 4748's behaviour (no TCP_NODELAY, headers and body written apart)
// every kept-alive request after the first waits for the client's delayed
// ACK, as ENGINE-NOTES measured on the real server (~44 ms).
func BenchmarkHealth(b *testing.B) {
	for _, build := range []string{"4748", "10573"} {
		for _, conn := range []string{"keepalive", "fresh"} {
			b.Run("build="+build+"/conn="+conn, func(b *testing.B) {
				r := startEngine(b, nil, map[string]string{"FAKE_BUILD": build})
				r.waitLog("starting the main loop")
				if conn == "fresh" {
					r.hc = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				}
				ctx := context.Background()
				for b.Loop() {
					resp, err := r.do(ctx, http.MethodGet, "/health", "")
					if err != nil || resp.code != 200 {
						b.Fatalf("GET /health = %+v, %v", resp, err)
					}
				}
			})
		}
	}
}

// BenchmarkCompletion is one non-streamed completion with no request delay.
func BenchmarkCompletion(b *testing.B) {
	r := startEngine(b, []string{"--metrics"}, nil)
	r.waitLog("starting the main loop")
	ctx := context.Background()
	for b.Loop() {
		resp, err := r.do(ctx, http.MethodPost, "/completion", `{"prompt":"hello","n_predict":8}`)
		if err != nil || resp.code != 200 {
			b.Fatalf("POST /completion = %+v, %v", resp, err)
		}
	}
}
