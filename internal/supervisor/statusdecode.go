package supervisor

import (
	"encoding/json"
	"strconv"
	"time"
)

// decodeStatus decodes a status.json as json.Unmarshal would. Refresh reads
// one per replica, a thousand per plan, and encoding/json spent 8 µs on
// each (reflection, and time.Time through its UnmarshalJSON); the flat
// object the supervisor writes is read here directly. Anything the direct
// reader does not expect (a nested value, an escape in a key, a number
// that is not an integer, a duplicate key) goes to encoding/json, so the
// result is always encoding/json's. FuzzDecodeStatus checks that.
func decodeStatus(b []byte) (Status, error) {
	if st, ok := decodeStatusFast(b); ok {
		return st, nil
	}
	var st Status
	err := json.Unmarshal(b, &st)
	return st, err
}

func decodeStatusFast(b []byte) (Status, bool) {
	var st Status
	p := statusParser{b: b}
	if !p.byte('{') {
		return st, false
	}
	var seen uint16
	if p.peek() == '}' {
		p.i++
	} else {
		for {
			key, ok := p.plainString()
			if !ok || !p.byte(':') {
				return st, false
			}
			bit, ok := p.field(&st, key)
			if !ok || seen&bit != 0 {
				return st, false
			}
			seen |= bit
			if p.byte(',') {
				continue
			}
			if !p.byte('}') {
				return st, false
			}
			break
		}
	}
	p.space()
	return st, p.i == len(b)
}

type statusParser struct {
	b []byte
	i int
}

func (p *statusParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *statusParser) peek() byte {
	p.space()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// byte consumes c (after white space) if it comes next.
func (p *statusParser) byte(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters; a
// string with any is left to encoding/json.
func (p *statusParser) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			// Escapes, and non-ASCII (invalid UTF-8 is replaced by
			// encoding/json): its business.
			return "", false
		}
		p.i++
	}
	return "", false
}

// integer reads a JSON integer within int64 (no fraction or exponent).
func (p *statusParser) integer() (int64, bool) {
	p.space()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == digits || (p.b[digits] == '0' && p.i-digits > 1) {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	return n, err == nil
}

// field decodes the value of key into st and returns key's bit (for
// duplicates). Unknown keys, and values of another JSON type than the
// field's, are not handled here.
func (p *statusParser) field(st *Status, key string) (uint16, bool) {
	str := func(dst *string) bool {
		s, ok := p.plainString()
		*dst = s
		return ok
	}
	num := func(dst *int) bool {
		n, ok := p.integer()
		if !ok || int64(int(n)) != n {
			return false
		}
		*dst = int(n)
		return true
	}
	tm := func(dst *time.Time) bool {
		s, ok := p.plainString()
		if !ok {
			return false
		}
		if !rfc3339Shape(s) {
			return false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return false
		}
		*dst = t
		return true
	}
	switch key {
	case "addr":
		return 1 << 0, str(&st.Addr)
	case "state":
		var s string
		ok := str(&s)
		st.State = State(s)
		return 1 << 1, ok
	case "pid":
		return 1 << 2, num(&st.PID)
	case "supervisor_pid":
		return 1 << 3, num(&st.SupervisorPID)
	case "port":
		return 1 << 4, num(&st.Port)
	case "restarts":
		return 1 << 5, num(&st.Restarts)
	case "last_error":
		return 1 << 6, str(&st.LastError)
	case "started_at":
		return 1 << 7, tm(&st.StartedAt)
	case "ready_at":
		return 1 << 8, tm(&st.ReadyAt)
	case "next_restart_at":
		return 1 << 9, tm(&st.NextRestartAt)
	case "updated_at":
		return 1 << 10, tm(&st.UpdatedAt)
	case "engine_start_ticks":
		n, ok := p.integer()
		if !ok || n < 0 {
			return 0, false
		}
		st.EngineStartTicks = uint64(n)
		return 1 << 11, true
	}
	return 0, false
}

// rfc3339Shape reports whether s is exactly YYYY-MM-DDTHH:MM:SS, an
// optional fraction of 1 to 9 digits after a dot, and Z or ±HH:MM: the
// form encoding/json writes and its strict parser reads. time.Parse alone
// is more lenient (a comma before the fraction, for one).
func rfc3339Shape(s string) bool {
	const base = "0000-00-00T00:00:00"
	if len(s) < len(base)+1 {
		return false
	}
	for i := range len(base) {
		if c := s[i]; base[i] == '0' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != base[i] {
			return false
		}
	}
	rest := s[len(base):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		for _, i := range []int{1, 2, 4, 5} {
			if rest[i] < '0' || rest[i] > '9' {
				return false
			}
		}
		return true
	}
	return false
}
