package tail

import (
	"strings"
	"sync"
)

// Lines keeps the last lines a process printed, for error messages (a
// test server that did not start says what it logged). The zero value
// keeps 1000 lines; it is safe for concurrent use.
type Lines struct {
	Max int // lines kept; 0 = 1000

	mu    sync.Mutex
	lines []string
}

// WriteLine records one line.
func (b *Lines) WriteLine(l string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.Max
	if limit <= 0 {
		limit = 1000
	}
	b.lines = append(b.lines, l)
	if len(b.lines) > 2*limit { // trim in batches: amortised O(1) per line
		b.lines = append([]string(nil), b.lines[len(b.lines)-limit:]...)
	}
}

// Last returns the last n lines, joined by newlines.
func (b *Lines) Last(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := b.lines
	if limit := b.Max; limit > 0 && len(lines) > limit {
		lines = lines[len(lines)-limit:]
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
