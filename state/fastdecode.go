package state

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeFast parses a state file without reflection: encoding/json spends
// most of a plan's state read on reflection and on validating the input
// in a separate pass, and a state of a thousand pools is megabytes.
//
// It understands exactly the files Encode writes and anything that means
// the same to encoding/json (other whitespace, members in another order,
// nulls, escaped strings). It gives up (ok false) on everything else: a
// syntax error, a value of another type, a member it does not know or that
// is given twice, a member name that differs only in case, invalid UTF-8,
// a number out of range, a format_version it does not read. Decode then
// falls back to encoding/json, which accepts or rejects the file and words
// the error. So whenever decodeFast succeeds, its State is the one
// encoding/json would have decoded; the fuzz test in fastdecode_test.go
// holds it to that.
func decodeFast(data []byte) (st *State, ok bool) {
	d := &scanner{b: data}
	defer func() {
		if r := recover(); r != nil {
			if _, giveUp := r.(gaveUp); !giveUp {
				panic(r)
			}
			st, ok = nil, false
		}
	}()
	var s State
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "format_version":
			d.once(&seen, 0)
			s.FormatVersion = d.int()
		case "lineage":
			d.once(&seen, 1)
			s.Lineage = d.str()
		case "serial":
			d.once(&seen, 2)
			s.Serial = d.uint64()
		case "llorch_version":
			d.once(&seen, 3)
			s.LlorchVersion = d.str()
		case "pools":
			d.once(&seen, 4)
			s.Pools = d.pools()
		default:
			d.fail()
		}
	})
	d.ws()
	if d.i != len(d.b) || seen&1 == 0 || s.FormatVersion < 1 || s.FormatVersion > FormatVersion {
		return nil, false // Decode words these
	}
	return &s, true
}

// gaveUp is what the scanner panics with when the input is not what it
// understands; decodeFast recovers it. A panic keeps every value-decoding
// function a plain expression rather than a value and a check.
type gaveUp struct{}

// fields records which members of one object were seen, to give up on a
// member given twice (encoding/json would merge or overwrite).
type fields uint32

// scanner reads JSON values from b starting at i.
type scanner struct {
	b []byte
	i int
}

func (d *scanner) fail() { panic(gaveUp{}) }

func (d *scanner) once(seen *fields, bit uint) {
	if *seen&(1<<bit) != 0 {
		d.fail()
	}
	*seen |= 1 << bit
}

func (d *scanner) ws() {
	b, i := d.b, d.i
	for i < len(b) {
		if c := b[i]; c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			break
		}
		i++
	}
	d.i = i
}

// peek returns the next byte that is not white space.
func (d *scanner) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		d.fail()
	}
	return d.b[d.i]
}

func (d *scanner) expect(c byte) {
	if d.peek() != c {
		d.fail()
	}
	d.i++
}

// null consumes a null literal if one is next.
func (d *scanner) null() bool {
	if d.peek() != 'n' {
		return false
	}
	if !bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.fail()
	}
	d.i += 4
	return true
}

// object reads an object, calling member with each member name, positioned
// at its value, which member must consume. A null reads as no members.
func (d *scanner) object(member func(key []byte)) {
	if d.null() {
		return
	}
	d.expect('{')
	if d.peek() == '}' {
		d.i++
		return
	}
	for {
		key, escaped := d.strBytes()
		if escaped {
			d.fail() // a member name spelled with escapes: leave it to encoding/json
		}
		d.expect(':')
		member(key)
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.fail()
		}
	}
}

// array reads an array, calling elem for each element, positioned at it.
// It reports false for null.
func (d *scanner) array(elem func()) bool {
	if d.null() {
		return false
	}
	d.expect('[')
	if d.peek() == ']' {
		d.i++
		return true
	}
	for {
		elem()
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return true
		default:
			d.fail()
		}
	}
}

// strBytes reads a string and returns its bytes between the quotes, still
// escaped, and whether it holds escapes.
func (d *scanner) strBytes() (raw []byte, escaped bool) {
	d.expect('"')
	b, start := d.b, d.i
	end := bytes.IndexByte(b[start:], '"')
	if end < 0 {
		d.fail()
	}
	raw = b[start : start+end]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return d.escapedStrBytes()
	}
	for _, c := range raw {
		if c < 0x20 {
			d.fail() // invalid JSON
		}
	}
	d.i = start + end + 1
	return raw, false
}

// escapedStrBytes is strBytes for a string that holds escapes, so that its
// first quote may not be its end.
func (d *scanner) escapedStrBytes() ([]byte, bool) {
	b, i := d.b, d.i
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			raw := b[d.i:i]
			d.i = i + 1
			return raw, true
		case c == '\\':
			i += 2 // the escaped byte is checked by unescape
		case c < 0x20:
			d.fail() // invalid JSON
		default:
			i++
		}
	}
	d.fail()
	return nil, false
}

// str reads a string; null reads as "".
func (d *scanner) str() string {
	if d.null() {
		return ""
	}
	raw, escaped := d.strBytes()
	if escaped {
		return d.unescape(raw)
	}
	if !utf8.Valid(raw) {
		d.fail() // encoding/json would replace the bad bytes
	}
	return string(raw)
}

// unescape decodes the escapes of a string's raw bytes as encoding/json
// does, including its replacement of an unpaired UTF-16 surrogate by
// U+FFFD.
func (d *scanner) unescape(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			if !utf8.Valid(raw[i:j]) {
				d.fail()
			}
			out = append(out, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			d.fail()
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			out = append(out, raw[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := d.hex4(raw, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, d.hex4(raw, i+2)); dec != unicode.ReplacementChar {
						out = utf8.AppendRune(out, dec)
						i += 6
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			d.fail()
		}
		i += 2
	}
	return string(out)
}

// hex4 reads the four hex digits of a \u escape at raw[i:].
func (d *scanner) hex4(raw []byte, i int) rune {
	if i+4 > len(raw) {
		d.fail()
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			d.fail()
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number and returns its text, which follows JSON's
// grammar.
func (d *scanner) number() []byte {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && '1' <= d.b[d.i] && d.b[d.i] <= '9':
		d.digits()
	default:
		d.fail()
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			d.fail()
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			d.fail()
		}
	}
	return d.b[start:d.i]
}

func (d *scanner) digits() int {
	n := 0
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

// int reads a whole number that fits an int64 (and so an int on the 64-bit
// platforms llorch runs on; strconv.IntSize is checked below); null reads
// as 0. A fraction or exponent is left to encoding/json, which refuses it.
func (d *scanner) int() int {
	if d.null() {
		return 0
	}
	n, err := strconv.ParseInt(string(d.number()), 10, strconv.IntSize)
	if err != nil {
		d.fail()
	}
	return int(n)
}

func (d *scanner) int64() int64 {
	if d.null() {
		return 0
	}
	n, err := strconv.ParseInt(string(d.number()), 10, 64)
	if err != nil {
		d.fail()
	}
	return n
}

func (d *scanner) uint64() uint64 {
	if d.null() {
		return 0
	}
	n, err := strconv.ParseUint(string(d.number()), 10, 64)
	if err != nil {
		d.fail()
	}
	return n
}

func (d *scanner) float64() float64 {
	if d.null() {
		return 0
	}
	f, err := strconv.ParseFloat(string(d.number()), 64)
	if err != nil {
		d.fail()
	}
	return f
}

// time reads a time as time.Time's UnmarshalJSON does (RFC 3339 in a
// string); null reads as the zero time.
func (d *scanner) time() time.Time {
	var t time.Time
	if d.null() {
		return t
	}
	start := d.i
	d.strBytes()
	if err := t.UnmarshalJSON(d.b[start:d.i]); err != nil {
		d.fail()
	}
	return t
}

// raw reads any value and returns a copy of its bytes, as
// json.RawMessage's UnmarshalJSON keeps them (a null too).
func (d *scanner) raw() json.RawMessage {
	start := d.skip()
	return append(json.RawMessage(nil), d.b[start:d.i]...)
}

// skip reads any value and returns where it started.
func (d *scanner) skip() int {
	c := d.peek()
	start := d.i
	switch {
	case c == '{':
		d.object(func([]byte) { d.skip() })
	case c == '[':
		d.array(func() { d.skip() })
	case c == '"':
		if raw, escaped := d.strBytes(); escaped {
			d.unescape(raw) // only to check it
		} else if !utf8.Valid(raw) {
			d.fail()
		}
	case c == 'n':
		d.null()
	case c == 't' && bytes.HasPrefix(d.b[d.i:], []byte("true")):
		d.i += 4
	case c == 'f' && bytes.HasPrefix(d.b[d.i:], []byte("false")):
		d.i += 5
	default:
		d.number()
	}
	return start
}

func (d *scanner) strings() []string {
	var out []string
	if d.array(func() { out = append(out, d.str()) }) && out == nil {
		out = []string{}
	}
	return out
}

func (d *scanner) ints() []int {
	var out []int
	if d.array(func() { out = append(out, d.int()) }) && out == nil {
		out = []int{}
	}
	return out
}

// stringMap reads an object of strings; null reads as nil and {} as an
// empty map, as encoding/json makes them. A name given twice keeps the
// last value, as there.
func (d *scanner) stringMap() map[string]string {
	if d.null() {
		return nil
	}
	out := map[string]string{}
	d.mapMembers(func(k string) { out[k] = d.str() })
	return out
}

// mapMembers reads an object whose member names are map keys (escapes
// allowed), calling member with each.
func (d *scanner) mapMembers(member func(k string)) {
	d.expect('{')
	if d.peek() == '}' {
		d.i++
		return
	}
	for {
		member(d.key())
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.fail()
		}
	}
}

// key reads a member name and the colon after it.
func (d *scanner) key() string {
	raw, escaped := d.strBytes()
	d.expect(':')
	if escaped {
		return d.unescape(raw)
	}
	if !utf8.Valid(raw) {
		d.fail()
	}
	return string(raw)
}

func (d *scanner) pools() map[string]*Pool {
	if d.null() {
		return nil
	}
	out := map[string]*Pool{}
	d.mapMembers(func(addr string) { out[addr] = d.pool() })
	return out
}

func (d *scanner) pool() *Pool {
	if d.null() {
		return nil
	}
	var p Pool
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "engine":
			d.once(&seen, 0)
			p.Engine = d.str()
		case "spec_hash":
			d.once(&seen, 1)
			p.SpecHash = d.str()
		case "spec":
			d.once(&seen, 2)
			p.Spec = d.spec()
		case "prepared":
			d.once(&seen, 3)
			p.Prepared = d.prepared()
		case "replicas":
			d.once(&seen, 4)
			if d.array(func() { p.Replicas = append(p.Replicas, d.replica()) }) && p.Replicas == nil {
				p.Replicas = []*Replica{}
			}
		default:
			d.fail()
		}
	})
	return &p
}

func (d *scanner) spec() *Spec {
	if d.null() {
		return nil
	}
	var s Spec
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "engine":
			d.once(&seen, 0)
			s.Engine = d.str()
		case "replicas":
			d.once(&seen, 1)
			s.Replicas = d.int()
		case "model":
			d.once(&seen, 2)
			s.Model = d.modelSpec()
		case "host":
			d.once(&seen, 3)
			s.Host = d.str()
		case "port":
			d.once(&seen, 4)
			s.Port = d.int()
		case "devices":
			d.once(&seen, 5)
			s.Devices = d.ints()
		case "ctx":
			d.once(&seen, 6)
			s.Ctx = d.int()
		case "flags":
			d.once(&seen, 7)
			s.Flags = d.strings()
		case "env":
			d.once(&seen, 8)
			s.Env = d.stringMap()
		case "labels":
			d.once(&seen, 9)
			s.Labels = d.stringMap()
		case "health":
			d.once(&seen, 10)
			s.Health = d.healthSpec()
		case "restart":
			d.once(&seen, 11)
			s.Restart = d.restartSpec()
		case "drain":
			d.once(&seen, 12)
			s.Drain = d.drainSpec()
		case "update":
			d.once(&seen, 13)
			s.Update = d.updateSpec()
		case "provider":
			d.once(&seen, 14)
			s.Provider = d.raw()
		default:
			d.fail()
		}
	})
	return &s
}

func (d *scanner) modelSpec() ModelSpec {
	var m ModelSpec
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "ref":
			d.once(&seen, 0)
			m.Ref = d.str()
		case "sha256":
			d.once(&seen, 1)
			m.SHA256 = d.str()
		default:
			d.fail()
		}
	})
	return m
}

func (d *scanner) healthSpec() HealthSpec {
	var h HealthSpec
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "path":
			d.once(&seen, 0)
			h.Path = d.str()
		case "interval":
			d.once(&seen, 1)
			h.Interval = d.str()
		case "start_timeout":
			d.once(&seen, 2)
			h.StartTimeout = d.str()
		case "live_interval":
			d.once(&seen, 3)
			h.LiveInterval = d.str()
		case "failures":
			d.once(&seen, 4)
			h.Failures = d.int()
		default:
			d.fail()
		}
	})
	return h
}

func (d *scanner) restartSpec() RestartSpec {
	var r RestartSpec
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "policy":
			d.once(&seen, 0)
			r.Policy = d.str()
		case "initial_backoff":
			d.once(&seen, 1)
			r.InitialBackoff = d.str()
		case "max_backoff":
			d.once(&seen, 2)
			r.MaxBackoff = d.str()
		case "multiplier":
			d.once(&seen, 3)
			r.Multiplier = d.float64()
		case "jitter":
			d.once(&seen, 4)
			r.Jitter = d.float64()
		case "reset_after":
			d.once(&seen, 5)
			r.ResetAfter = d.str()
		case "max_failures":
			d.once(&seen, 6)
			r.MaxFailures = d.int()
		case "cooldown":
			d.once(&seen, 7)
			r.Cooldown = d.str()
		default:
			d.fail()
		}
	})
	return r
}

func (d *scanner) drainSpec() DrainSpec {
	var s DrainSpec
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "deadline":
			d.once(&seen, 0)
			s.Deadline = d.str()
		case "kill_timeout":
			d.once(&seen, 1)
			s.KillTimeout = d.str()
		default:
			d.fail()
		}
	})
	return s
}

func (d *scanner) updateSpec() UpdateSpec {
	var u UpdateSpec
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "strategy":
			d.once(&seen, 0)
			u.Strategy = d.str()
		default:
			d.fail()
		}
	})
	return u
}

func (d *scanner) prepared() *Prepared {
	if d.null() {
		return nil
	}
	var p Prepared
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "binary_path":
			d.once(&seen, 0)
			p.BinaryPath = d.str()
		case "args":
			d.once(&seen, 1)
			p.Args = d.strings()
		case "env":
			d.once(&seen, 2)
			p.Env = d.stringMap()
		case "secret_env":
			d.once(&seen, 3)
			p.SecretEnvHashes = d.stringMap()
		case "host":
			d.once(&seen, 4)
			p.Host = d.str()
		case "port":
			d.once(&seen, 5)
			p.Port = d.int()
		case "model_path":
			d.once(&seen, 6)
			p.ModelPath = d.str()
		case "model_sha256":
			d.once(&seen, 7)
			p.ModelSHA256 = d.str()
		case "engine_version":
			d.once(&seen, 8)
			p.EngineVersion = d.str()
		case "provisioning_mode":
			d.once(&seen, 9)
			p.ProvisioningMode = d.str()
		case "device_mask":
			d.once(&seen, 10)
			p.DeviceMask = d.str()
		case "health_path":
			d.once(&seen, 11)
			p.HealthPath = d.str()
		case "binary_size":
			d.once(&seen, 12)
			p.BinarySize = d.int64()
		case "binary_mtime":
			d.once(&seen, 13)
			p.BinaryMtime = d.time()
		case "model_size":
			d.once(&seen, 14)
			p.ModelSize = d.int64()
		case "model_mtime":
			d.once(&seen, 15)
			p.ModelMtime = d.time()
		default:
			d.fail()
		}
	})
	return &p
}

func (d *scanner) replica() *Replica {
	if d.null() {
		return nil
	}
	var r Replica
	var seen fields
	d.object(func(key []byte) {
		switch string(key) {
		case "id":
			d.once(&seen, 0)
			r.ID = d.str()
		case "port":
			d.once(&seen, 1)
			r.Port = d.int()
		case "pid":
			d.once(&seen, 2)
			r.PID = d.int()
		case "supervisor_pid":
			d.once(&seen, 3)
			r.SupervisorPID = d.int()
		case "status":
			d.once(&seen, 4)
			r.Status = d.str()
		case "run_dir":
			d.once(&seen, 5)
			r.RunDir = d.str()
		case "handoff":
			d.once(&seen, 6)
			r.Handoff = d.str()
		case "started_at":
			d.once(&seen, 7)
			r.StartedAt = d.time()
		case "ready_at":
			d.once(&seen, 8)
			r.ReadyAt = d.time()
		case "restarts":
			d.once(&seen, 9)
			r.Restarts = d.int()
		case "last_error":
			d.once(&seen, 10)
			r.LastError = d.str()
		case "generation":
			d.once(&seen, 11)
			r.Generation = d.int()
		default:
			d.fail()
		}
	})
	return &r
}
