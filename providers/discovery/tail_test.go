package discovery

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestTailKeepsTheLastLines(t *testing.T) {
	var tl tail
	for i := 1; i <= tailLines+5; i++ {
		fmt.Fprintf(&tl, "line %d\n", i)
	}
	got := tl.Lines()
	if len(got) != tailLines || got[0] != "line 6" || got[len(got)-1] != fmt.Sprintf("line %d", tailLines+5) {
		t.Errorf("kept %d lines from %q to %q", len(got), got[0], got[len(got)-1])
	}
}

func TestTailJoinsLinesSplitAcrossWrites(t *testing.T) {
	var tl tail
	for _, chunk := range []string{"pan", "ic: boom\n\ngoroutine 1 [run", "ning]:\r\n", "no newline yet"} {
		if _, err := tl.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"panic: boom", "goroutine 1 [running]:", "no newline yet"}
	if got := tl.Lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTailRendersPluginLogLines(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"@level":"error","@message":"staging failed","@timestamp":"2026-01-01T00:00:00Z","path":"/m","code":3}`,
			"[ERROR] staging failed: code=3 path=/m"},
		{`{"@level":"warn","@message":"slow disk"}`, "[WARN] slow disk"},
		{`{"not":"a log line"}`, `{"not":"a log line"}`},
		{`{broken json`, `{broken json`},
		{"plain text", "plain text"},
	}
	for _, tc := range tests {
		if got := render(tc.in); got != tc.want {
			t.Errorf("render(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTailTruncatesHugeLines(t *testing.T) {
	var tl tail
	fmt.Fprintf(&tl, "%s\n", strings.Repeat("x", 10*maxLineLen))
	got := tl.Lines()
	if len(got) != 1 || len(got[0]) != maxLineLen+len("…") {
		t.Errorf("kept a line of %d bytes, want it cut to %d", len(got[0]), maxLineLen)
	}
}

func TestTailIsSafeForConcurrentWriters(t *testing.T) {
	var tl tail
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				fmt.Fprintf(&tl, "writer %d line %d\n", w, i)
				_ = tl.Lines()
			}
		}()
	}
	wg.Wait()
	if got := len(tl.Lines()); got != tailLines {
		t.Errorf("kept %d lines, want %d", got, tailLines)
	}
}

func TestTailKeepsTheStartOfACrashDump(t *testing.T) {
	var tl tail
	fmt.Fprintln(&tl, `{"@level":"info","@message":"staging model"}`)
	fmt.Fprintln(&tl, "panic: runtime error: index out of range [3] with length 3")
	fmt.Fprintln(&tl, "")
	fmt.Fprintln(&tl, "goroutine 7 [running]:")
	for i := range 100 {
		fmt.Fprintf(&tl, "main.frame%d()\n", i)
	}
	got := tl.Lines()
	want := []string{
		"panic: runtime error: index out of range [3] with length 3",
		"goroutine 7 [running]:",
		"main.frame0()", "main.frame1()", "main.frame2()", "main.frame3()", "main.frame4()", "main.frame5()",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Lines() = %q\nwant %q", got, want)
	}
}
