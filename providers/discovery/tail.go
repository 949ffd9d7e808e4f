package discovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// tailLines is how many of a plugin's last stderr lines are kept for
// error messages.
const tailLines = 40

// maxLineLen bounds one kept line, so a plugin printing a huge blob cannot
// flood an error message.
const maxLineLen = 512

// tail is an io.Writer that keeps the last lines written to it. It is safe
// for concurrent use: go-plugin writes a plugin's raw stderr and its synced
// stderr from different goroutines.
type tail struct {
	mu      sync.Mutex
	lines   []string // ring buffer
	next    int      // where the next line goes once the ring is full
	partial []byte   // an unfinished last line
	// crash holds a Go panic or fatal error and the top of its stack trace:
	// a crash dump is hundreds of goroutine lines whose last 40 say nothing,
	// while its first line says what went wrong.
	crash []string
}

// crashLines is how much of a crash dump (message, goroutine header, first
// frames) is kept.
const crashLines = 8

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(t.partial) < maxLineLen {
				t.partial = append(t.partial, p...)
			}
			break
		}
		t.partial = append(t.partial, p[:i]...)
		t.add(string(t.partial))
		t.partial = t.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (t *tail) add(line string) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	if len(line) > maxLineLen {
		line = line[:maxLineLen] + "…"
	}
	switch {
	case t.crash == nil && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")):
		t.crash = []string{line}
	case t.crash != nil && len(t.crash) < crashLines:
		t.crash = append(t.crash, line)
	}
	if len(t.lines) < tailLines {
		t.lines = append(t.lines, line)
		return
	}
	t.lines[t.next] = line
	t.next = (t.next + 1) % tailLines
}

// Lines returns the kept lines, oldest first, each made readable by
// render, followed by an unfinished last line if there is one. After a Go
// crash it returns the start of the crash dump instead.
func (t *tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	if t.crash != nil {
		out = append(out, t.crash...)
		if len(out) >= crashLines {
			return out
		}
	} else {
		for i := range t.lines {
			out = append(out, render(t.lines[(t.next+i)%len(t.lines)]))
		}
	}
	if p := strings.TrimSpace(string(t.partial)); p != "" {
		out = append(out, render(p))
	}
	return out
}

// render turns an hclog JSON line, which is how plugins log, into the
// shape of llorch's own log lines ("[ERROR] message: key=value"); any
// other line is returned as it is.
func render(line string) string {
	if !strings.HasPrefix(line, "{") {
		return line
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		return line
	}
	msg, ok := entry["@message"].(string)
	if !ok {
		return line
	}
	level, _ := entry["@level"].(string)
	var kv []string
	for k, v := range entry {
		if strings.HasPrefix(k, "@") {
			continue
		}
		kv = append(kv, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(kv)
	out := msg
	if level != "" {
		out = "[" + strings.ToUpper(level) + "] " + msg
	}
	if len(kv) > 0 {
		out += ": " + strings.Join(kv, " ")
	}
	return out
}

// indent formats lines for the end of an error message.
func indent(lines []string) string {
	return "  " + strings.Join(lines, "\n  ")
}
