package fakeengine

import (
	"strings"
	"testing"
)

func TestModelsAndPropsNameTheModel(t *testing.T) {
	type models struct {
		Object string
		Data   []struct{ ID, Object, OwnedBy string }
	}
	type props struct {
		ModelPath                 string `json:"model_path"`
		ModelAlias                string `json:"model_alias"`
		TotalSlots                int    `json:"total_slots"`
		BuildInfo                 string `json:"build_info"`
		DefaultGenerationSettings struct {
			NCtx int `json:"n_ctx"`
		} `json:"default_generation_settings"`
	}
	tests := []struct {
		name   string
		args   []string
		wantID string
	}{
		{"without an alias the id is the model path", []string{"-np", "3", "-c", "1024"}, tinyModel},
		{"with an alias the id is the alias", []string{"-np", "3", "-c", "1024", "-a", "chat"}, "chat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startEngine(t, tc.args, nil)
			r.waitLog("starting the main loop")
			m := decode[models](t, r.get("/v1/models").body)
			if m.Object != "list" || len(m.Data) != 1 || m.Data[0].ID != tc.wantID || m.Data[0].Object != "model" {
				t.Errorf("/v1/models = %+v, want one model with id %q", m, tc.wantID)
			}
			p := decode[props](t, r.get("/props").body)
			if p.ModelPath != tinyModel || p.ModelAlias != tc.wantID || p.TotalSlots != 3 || p.BuildInfo != "b10573-d775b8967" || p.DefaultGenerationSettings.NCtx != 1024 {
				t.Errorf("/props = %+v", p)
			}
		})
	}
}

func TestBadRequestsAreRefused(t *testing.T) {
	r := startEngine(t, nil, nil)
	r.waitLog("starting the main loop")
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"completion body not JSON", "POST", "/completion", "{", 400,
			`{"error":{"code":400,"message":"invalid JSON body: unexpected EOF","type":"invalid_request_error"}}` + "\n"},
		{"completion without a prompt", "POST", "/completion", `{"n_predict":2}`, 400,
			`{"error":{"code":400,"message":"\"prompt\" must be provided","type":"invalid_request_error"}}` + "\n"},
		{"chat without messages", "POST", "/v1/chat/completions", `{"messages":[]}`, 400,
			`{"error":{"code":400,"message":"\"messages\" must be a non-empty array","type":"invalid_request_error"}}` + "\n"},
		{"streamed completion", "POST", "/completion", `{"prompt":"hi","stream":true}`, 400,
			`{"error":{"code":400,"message":"streaming is not supported by fake-llama-server: send \"stream\": false","type":"invalid_request_error"}}` + "\n"},
		{"unknown path", "GET", "/nope", "", 404,
			`{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}` + "\n"},
		{"GET on a POST endpoint", "GET", "/completion", "", 404,
			`{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}` + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := r.do(boundedCtx(t), tc.method, tc.path, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			expect(t, tc.method+" "+tc.path, resp, tc.code, tc.want)
		})
	}
}

func TestEveryRequestIsLogged(t *testing.T) {
	r := startEngine(t, nil, nil)
	r.waitLog("starting the main loop")
	r.get("/health")
	r.post("/completion", `{"prompt":"x"}`)
	r.get("/missing")
	for _, want := range []string{
		"srv  log_server_r: request: GET /health 127.0.0.1 200",
		"srv  log_server_r: request: POST /completion 127.0.0.1 200",
		"srv  log_server_r: request: GET /missing 127.0.0.1 404",
	} {
		r.waitLog(want)
	}
	if n := strings.Count(r.log.String(), "log_server_r"); n != 3 {
		t.Errorf("%d request lines for 3 requests:\n%s", n, r.log.String())
	}
}
