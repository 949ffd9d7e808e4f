package stage

import (
	"strings"
	"testing"
)

func TestParseRefRejectsBadForms(t *testing.T) {
	tests := []struct {
		name string
		ref  string
		want []string
	}{
		{name: "an unknown model scheme", ref: "s3://bucket/m.gguf",
			want: []string{`model ref "s3://bucket/m.gguf" has an unsupported form ("s3:")`, "file:/path/model.gguf, https://host/model.gguf or hf:org/repo/file.gguf[@revision]"}},
		{name: "a bare path", ref: "/srv/m.gguf",
			want: []string{`model ref "/srv/m.gguf" has an unsupported form`, "file:/path/model.gguf"}},
		{name: "plain http", ref: "http://user:pw@example.com/m.gguf",
			want: []string{"uses plain http://, which is not supported; use https://", "user:xxxxx@"}},
		{name: "an empty model ref", ref: "",
			want: []string{"the model ref is empty"}},
		{name: "file: with no path", ref: "file:",
			want: []string{`model ref "file:" has no path`}},
		{name: "file: naming a host", ref: "file://nas/m.gguf",
			want: []string{"names a host; file: refs are local paths"}},
		{name: "https without a file", ref: "https://example.com/",
			want: []string{"does not name a file"}},
		{name: "hf: with ..", ref: "hf:org/repo/../../etc/passwd",
			want: []string{`hf: ref "hf:org/repo/../../etc/passwd" contains a ".." segment`}},
		{name: "hf: with an absolute path", ref: "hf:/org/repo/m.gguf",
			want: []string{`hf: ref "hf:/org/repo/m.gguf" is an absolute path`}},
		{name: "hf: with two segments", ref: "hf:org/repo",
			want: []string{`hf: ref "hf:org/repo" has 2 segment(s) but needs at least 3`}},
		{name: "hf: with an empty segment", ref: "hf:org//m.gguf",
			want: []string{"has an empty or \".\" path segment"}},
		{name: "hf: with an empty revision", ref: "hf:org/repo/m.gguf@",
			want: []string{`ends in "@" with no revision`}},
		{name: "hf: with a .. revision", ref: "hf:org/repo/m.gguf@../x",
			want: []string{`has an invalid revision "../x"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRef(tc.ref, "/srv")
			if err == nil {
				t.Fatalf("ParseRef(%q) accepted it", tc.ref)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "user:pw") {
				t.Errorf("the password leaked: %q", err)
			}
		})
	}
}

func TestHFRefParsing(t *testing.T) {
	tests := []struct {
		ref                       string
		org, repo, file, revision string
		url                       string
	}{
		{"hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", "Qwen", "Qwen2.5-0.5B-Instruct-GGUF",
			"qwen2.5-0.5b-instruct-q4_k_m.gguf", "main",
			"https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf"},
		{"hf:org/repo/sub dir/m.gguf@v1.0", "org", "repo", "sub dir/m.gguf", "v1.0",
			"https://huggingface.co/org/repo/resolve/v1.0/sub%20dir/m.gguf"},
		{"hf:org/repo/m.gguf@refs/pr/1", "org", "repo", "m.gguf", "refs/pr/1",
			"https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/m.gguf"},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			m, err := ParseRef(tc.ref, "/")
			if err != nil {
				t.Fatal(err)
			}
			if m.Org != tc.org || m.Repo != tc.repo || m.File != tc.file || m.Revision != tc.revision {
				t.Errorf("parsed %+v", m)
			}
			if got := m.HFResolveURL("https://huggingface.co/"); got != tc.url {
				t.Errorf("URL = %q, want %q", got, tc.url)
			}
		})
	}
}

func TestRelativeFileRefsResolveAgainstTheConfigurationDirectory(t *testing.T) {
	tests := map[string]string{
		"file:/abs/m.gguf":        "/abs/m.gguf",
		"file:models/m.gguf":      "/work/dir/models/m.gguf",
		"file:../m.gguf":          "/work/m.gguf",
		"file:///abs/m.gguf":      "/abs/m.gguf",
		"file:/abs/../abs/m.gguf": "/abs/m.gguf",
	}
	for ref, want := range tests {
		m, err := ParseRef(ref, "/work/dir")
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if m.Path != want {
			t.Errorf("%s → %q, want %q", ref, m.Path, want)
		}
	}
}
