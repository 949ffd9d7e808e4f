package textdiff

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestUnified(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want string
	}{
		{
			name: "equal texts give no diff",
			a:    "a\nb\n", b: "a\nb\n",
			want: "",
		},
		{
			name: "changed line in the middle keeps three lines of context",
			a:    "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
			b:    "1\n2\n3\n4\nfive\n6\n7\n8\n9\n",
			want: "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n",
		},
		{
			name: "text added to an empty file starts at line zero",
			a:    "", b: "x\n",
			want: "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n",
		},
		{
			name: "everything deleted leaves an empty range in b",
			a:    "x\ny\n", b: "",
			want: "--- a\n+++ b\n@@ -1,2 +0,0 @@\n-x\n-y\n",
		},
		{
			name: "a missing final newline is marked",
			a:    "a\nb", b: "a\nb\n",
			want: "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
		},
		{
			name: "changes far apart make two hunks",
			a:    "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
			b:    "one\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\ntwelve\n",
			want: "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+twelve\n",
		},
		{
			name: "changes six lines apart share one hunk",
			a:    "1\n2\n3\n4\n5\n6\n7\n8\n",
			b:    "one\n2\n3\n4\n5\n6\n7\neight\n",
			want: "--- a\n+++ b\n@@ -1,8 +1,8 @@\n-1\n+one\n 2\n 3\n 4\n 5\n 6\n 7\n-8\n+eight\n",
		},
		{
			name: "inserted line in hcl reads like diff -u",
			a:    "pool \"chat\" {\n  engine = \"llamacpp\"\n}\n",
			b:    "pool \"chat\" {\n  engine   = \"llamacpp\"\n  replicas = 2\n}\n",
			want: "--- a\n+++ b\n@@ -1,3 +1,4 @@\n pool \"chat\" {\n-  engine = \"llamacpp\"\n+  engine   = \"llamacpp\"\n+  replicas = 2\n }\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Unified("a", "b", []byte(tc.a), []byte(tc.b))
			if got != tc.want {
				t.Errorf("Unified mismatch\ngot:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestUnifiedRoundTripsAndIsMinimal applies every diff of random texts back
// to a and checks it yields b, and that the number of changed lines is the
// smallest possible (n + m - 2·LCS).
func TestUnifiedRoundTripsAndIsMinimal(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		a, b := randomText(rnd), randomText(rnd)
		d := Unified("a", "b", []byte(a), []byte(b))
		got, err := apply(a, d)
		if err != nil {
			t.Fatalf("case %d: applying diff: %v\na=%q\nb=%q\ndiff:\n%s", i, err, a, b, d)
		}
		if got != b {
			t.Fatalf("case %d: patched text differs\na=%q\nb=%q\ngot=%q\ndiff:\n%s", i, a, b, got, d)
		}
		al, bl := splitLines(a), splitLines(b)
		changed := 0
		for _, line := range strings.Split(d, "\n") {
			if (strings.HasPrefix(line, "-") && !strings.HasPrefix(line, "---")) ||
				(strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "+++")) {
				changed++
			}
		}
		if want := len(al) + len(bl) - 2*lcs(al, bl); changed != want {
			t.Fatalf("case %d: %d changed lines, minimum is %d\na=%q\nb=%q\ndiff:\n%s", i, changed, want, a, b, d)
		}
	}
}

func randomText(rnd *rand.Rand) string {
	var sb strings.Builder
	for range rnd.IntN(12) {
		sb.WriteString(string(rune('a' + rnd.IntN(4))))
		sb.WriteByte('\n')
	}
	s := sb.String()
	if s != "" && rnd.IntN(4) == 0 {
		s = s[:len(s)-1]
	}
	return s
}

func lcs(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

// apply is a small patch(1) for the output of Unified: it checks every
// context and deleted line against a.
func apply(a, d string) (string, error) {
	if d == "" {
		return a, nil
	}
	src := splitLines(a)
	raw := strings.SplitAfter(strings.TrimSuffix(d, "\n"), "\n")
	if len(raw) < 2 || raw[0] != "--- a\n" || raw[1] != "+++ b\n" {
		return "", fmt.Errorf("bad header in %q", d)
	}
	// Attach each "\ No newline" marker to the line before it.
	var body []string
	for _, l := range raw[2:] {
		if strings.HasPrefix(l, "\\ No newline at end of file") {
			body[len(body)-1] = strings.TrimSuffix(body[len(body)-1], "\n")
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			l += "\n" // the TrimSuffix above took the diff's own last newline
		}
		body = append(body, l)
	}
	var out []string
	pos := 0
	for _, l := range body {
		if strings.HasPrefix(l, "@@") {
			var aStart, aCount, bStart, bCount int
			if _, err := fmt.Sscanf(normalizeHeader(l), "@@ -%d,%d +%d,%d @@", &aStart, &aCount, &bStart, &bCount); err != nil {
				return "", fmt.Errorf("bad hunk header %q: %v", l, err)
			}
			from := aStart - 1
			if aCount == 0 {
				from = aStart
			}
			if from < pos {
				return "", fmt.Errorf("hunk at line %d overlaps the previous one", aStart)
			}
			out = append(out, src[pos:from]...)
			pos = from
			continue
		}
		op, text := l[0], l[1:]
		switch op {
		case ' ', '-':
			if pos >= len(src) || src[pos] != text {
				return "", fmt.Errorf("line %d: diff says %q, text has %q", pos+1, text, at(src, pos))
			}
			if op == ' ' {
				out = append(out, text)
			}
			pos++
		case '+':
			out = append(out, text)
		default:
			return "", fmt.Errorf("unknown diff line %q", l)
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, ""), nil
}

// normalizeHeader expands the one-line short forms ("-3" for "-3,1") so a
// single Sscanf format reads every header.
func normalizeHeader(h string) string {
	fields := strings.Fields(h)
	for i := 1; i <= 2; i++ {
		if !strings.Contains(fields[i], ",") {
			fields[i] += ",1"
		}
	}
	return strings.Join(fields, " ")
}

func at(src []string, i int) string {
	if i < len(src) {
		return src[i]
	}
	return "end of text after line " + strconv.Itoa(len(src))
}
