package textdiff

import (
	"fmt"
	"strings"
)

// contextLines is how many unchanged lines surround each change, as in
// `diff -u`.
const contextLines = 3

// kind is what an edit does to one line.
type kind byte

const (
	opEqual  kind = ' '
	opDelete kind = '-'
	opInsert kind = '+'
)

// edit is one line of the edit script. a and b are the indexes of the line
// in each text; for an insert, a is where it goes in a, and for a delete, b
// is where it would have been in b.
type edit struct {
	kind kind
	a, b int
}

// Unified returns the unified diff that turns a into b, with the header
// "--- aName" / "+++ bName", or "" when the texts are equal. A last line
// without a newline is marked as diff(1) does.
func Unified(aName, bName string, a, b []byte) string {
	if string(a) == string(b) {
		return ""
	}
	al, bl := splitLines(string(a)), splitLines(string(b))
	edits := diffLines(al, bl)

	var sb strings.Builder
	fmt.Fprintf(&sb, "--- %s\n+++ %s\n", aName, bName)
	for _, h := range hunks(edits) {
		writeHunk(&sb, h, al, bl)
	}
	return sb.String()
}

// splitLines splits s after every newline, keeping the newlines, so that a
// missing final newline is a difference like any other.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// diffLines returns an edit script from a to b with the fewest inserts and
// deletes. The common prefix and suffix are matched first, which keeps
// Myers' algorithm on the short middle part where formatting changes are.
func diffLines(a, b []string) []edit {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	edits := make([]edit, 0, len(a)+len(b))
	for i := range pre {
		edits = append(edits, edit{opEqual, i, i})
	}
	for _, e := range myers(a[pre:len(a)-suf], b[pre:len(b)-suf]) {
		edits = append(edits, edit{e.kind, e.a + pre, e.b + pre})
	}
	for i := range suf {
		edits = append(edits, edit{opEqual, len(a) - suf + i, len(b) - suf + i})
	}
	return edits
}

// myers is the O((N+M)D) greedy algorithm from Eugene Myers, "An O(ND)
// Difference Algorithm and Its Variations" (1986), keeping each round's
// frontier so the path can be walked back.
func myers(a, b []string) []edit {
	n, m := len(a), len(b)
	maxD := n + m
	if maxD == 0 {
		return nil
	}
	off := maxD
	v := make([]int, 2*maxD+2)
	var trace [][]int
	for d := 0; d <= maxD; d++ {
		trace = append(trace, append([]int(nil), v...))
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1] // step down: insert
			} else {
				x = v[off+k-1] + 1 // step right: delete
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, off, n, m, d)
			}
		}
	}
	panic("textdiff: myers did not terminate") // unreachable: d = n+m always reaches the end
}

// backtrack walks the recorded frontiers from (n, m) back to (0, 0).
func backtrack(trace [][]int, off, n, m, d int) []edit {
	var rev []edit
	x, y := n, m
	for ; d > 0; d-- {
		v := trace[d]
		k := x - y
		var prevK int
		if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := v[off+prevK]
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x, y = x-1, y-1
			rev = append(rev, edit{opEqual, x, y})
		}
		if x == prevX {
			y--
			rev = append(rev, edit{opInsert, x, y})
		} else {
			x--
			rev = append(rev, edit{opDelete, x, y})
		}
	}
	for x > 0 && y > 0 {
		x, y = x-1, y-1
		rev = append(rev, edit{opEqual, x, y})
	}
	edits := make([]edit, len(rev))
	for i, e := range rev {
		edits[len(rev)-1-i] = e
	}
	return edits
}

// hunks cuts the edit script into runs of changes with their context,
// merging changes that are at most 2*contextLines unchanged lines apart.
func hunks(edits []edit) [][]edit {
	var out [][]edit
	i := 0
	for i < len(edits) {
		for i < len(edits) && edits[i].kind == opEqual {
			i++
		}
		if i == len(edits) {
			break
		}
		start := max(i-contextLines, 0)
		last := i
		for j := i; j < len(edits); j++ {
			if edits[j].kind != opEqual {
				last = j
			} else if j-last > 2*contextLines {
				break
			}
		}
		stop := min(last+contextLines+1, len(edits))
		out = append(out, edits[start:stop])
		i = stop
	}
	return out
}

func writeHunk(sb *strings.Builder, h []edit, a, b []string) {
	var aCount, bCount int
	for _, e := range h {
		if e.kind != opInsert {
			aCount++
		}
		if e.kind != opDelete {
			bCount++
		}
	}
	fmt.Fprintf(sb, "@@ -%s +%s @@\n", hunkRange(h[0].a, aCount), hunkRange(h[0].b, bCount))
	for _, e := range h {
		line := ""
		switch e.kind {
		case opEqual, opDelete:
			line = a[e.a]
		case opInsert:
			line = b[e.b]
		}
		sb.WriteByte(byte(e.kind))
		sb.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange formats a hunk's line range as diff -u does: "start,count",
// "start" alone for one line, and the line before for an empty range.
func hunkRange(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start)
	case 1:
		return fmt.Sprintf("%d", start+1)
	default:
		return fmt.Sprintf("%d,%d", start+1, count)
	}
}
