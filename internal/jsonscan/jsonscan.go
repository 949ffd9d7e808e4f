// Package jsonscan reads JSON without reflection, for decoders written by
// hand for one shape of file (the state file, a supervisor's status.json)
// that are read often enough for encoding/json's reflection to show.
//
// A Scanner understands what encoding/json understands the same way, and
// gives up on everything else: a syntax error, a value of another type than
// asked, a member name with escapes, invalid UTF-8, a number out of range
// or with a fraction where an integer is asked. A decoder built on it calls
// Decode, falls back to encoding/json when it reports false, and so always
// ends with encoding/json's result and error; each such decoder has a fuzz
// test holding it to that.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Decode runs top on a Scanner over data. It reports false when top gave
// up (a Scanner method or top itself called Fail) or when anything but
// white space follows the value top read.
func Decode(data []byte, top func(d *Scanner)) (ok bool) {
	d := &Scanner{b: data}
	defer func() {
		if r := recover(); r != nil {
			if _, giveUp := r.(gaveUp); !giveUp {
				panic(r)
			}
			ok = false
		}
	}()
	top(d)
	d.ws()
	return d.i == len(d.b)
}

// gaveUp is what the Scanner panics with when the input is not what it
// understands; Decode recovers it. A panic keeps every value-decoding
// function a plain expression rather than a value and a check.
type gaveUp struct{}

// Fields records which members of one object were seen (Once), to give up
// on a member given twice (encoding/json would merge or overwrite).
type Fields uint32

// Scanner reads JSON values from b starting at i. Its methods panic with
// gaveUp on anything they do not understand; Decode recovers it.
type Scanner struct {
	b []byte
	i int
}

// Fail gives up on the input: Decode reports false.
func (d *Scanner) Fail() { panic(gaveUp{}) }

// Once marks member number bit of an object seen, and gives up when it
// was seen before.
func (d *Scanner) Once(seen *Fields, bit uint) {
	if *seen&(1<<bit) != 0 {
		d.Fail()
	}
	*seen |= 1 << bit
}

func (d *Scanner) ws() {
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
func (d *Scanner) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		d.Fail()
	}
	return d.b[d.i]
}

func (d *Scanner) expect(c byte) {
	if d.peek() != c {
		d.Fail()
	}
	d.i++
}

// null consumes a null literal if one is next.
func (d *Scanner) Null() bool {
	if d.peek() != 'n' {
		return false
	}
	if !bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.Fail()
	}
	d.i += 4
	return true
}

// object reads an object, calling member with each member name, positioned
// at its value, which member must consume. A null reads as no members.
func (d *Scanner) Object(member func(key []byte)) {
	if d.Null() {
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
			d.Fail() // a member name spelled with escapes: leave it to encoding/json
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
			d.Fail()
		}
	}
}

// array reads an array, calling elem for each element, positioned at it.
// It reports false for null.
func (d *Scanner) Array(elem func()) bool {
	if d.Null() {
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
			d.Fail()
		}
	}
}

// strBytes reads a string and returns its bytes between the quotes, still
// escaped, and whether it holds escapes.
func (d *Scanner) strBytes() (raw []byte, escaped bool) {
	d.expect('"')
	b, start := d.b, d.i
	end := bytes.IndexByte(b[start:], '"')
	if end < 0 {
		d.Fail()
	}
	raw = b[start : start+end]
	if bytes.IndexByte(raw, '\\') >= 0 {
		return d.escapedStrBytes()
	}
	for _, c := range raw {
		if c < 0x20 {
			d.Fail() // invalid JSON
		}
	}
	d.i = start + end + 1
	return raw, false
}

// escapedStrBytes is strBytes for a string that holds escapes, so that its
// first quote may not be its end.
func (d *Scanner) escapedStrBytes() ([]byte, bool) {
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
			d.Fail() // invalid JSON
		default:
			i++
		}
	}
	d.Fail()
	return nil, false
}

// str reads a string; null reads as "".
func (d *Scanner) Str() string {
	if d.Null() {
		return ""
	}
	raw, escaped := d.strBytes()
	if escaped {
		return d.unescape(raw)
	}
	if !utf8.Valid(raw) {
		d.Fail() // encoding/json would replace the bad bytes
	}
	return string(raw)
}

// unescape decodes the escapes of a string's raw bytes as encoding/json
// does, including its replacement of an unpaired UTF-16 surrogate by
// U+FFFD.
func (d *Scanner) unescape(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			if !utf8.Valid(raw[i:j]) {
				d.Fail()
			}
			out = append(out, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			d.Fail()
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
			d.Fail()
		}
		i += 2
	}
	return string(out)
}

// hex4 reads the four hex digits of a \u escape at raw[i:].
func (d *Scanner) hex4(raw []byte, i int) rune {
	if i+4 > len(raw) {
		d.Fail()
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
			d.Fail()
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a number and returns its text, which follows JSON's
// grammar.
func (d *Scanner) number() []byte {
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
		d.Fail()
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			d.Fail()
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			d.Fail()
		}
	}
	return d.b[start:d.i]
}

func (d *Scanner) digits() int {
	n := 0
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

// Int reads a whole number that fits an int; null reads as 0. A fraction
// or exponent is left to encoding/json, which refuses it for an integer.
func (d *Scanner) Int() int { return int(d.signed(strconv.IntSize)) }

// Int64 is Int for an int64.
func (d *Scanner) Int64() int64 { return d.signed(64) }

func (d *Scanner) signed(bits int) int64 {
	if d.Null() {
		return 0
	}
	n, err := strconv.ParseInt(string(d.number()), 10, bits)
	if err != nil {
		d.Fail()
	}
	return n
}

// Uint64 reads a whole number that fits a uint64; null reads as 0.
func (d *Scanner) Uint64() uint64 {
	if d.Null() {
		return 0
	}
	n, err := strconv.ParseUint(string(d.number()), 10, 64)
	if err != nil {
		d.Fail()
	}
	return n
}

// Float64 reads any number that fits a float64; null reads as 0.
func (d *Scanner) Float64() float64 {
	if d.Null() {
		return 0
	}
	f, err := strconv.ParseFloat(string(d.number()), 64)
	if err != nil {
		d.Fail()
	}
	return f
}

// time reads a time as time.Time's UnmarshalJSON does (RFC 3339 in a
// string); null reads as the zero time.
func (d *Scanner) Time() time.Time {
	var t time.Time
	if d.Null() {
		return t
	}
	start := d.i
	d.strBytes()
	if err := t.UnmarshalJSON(d.b[start:d.i]); err != nil {
		d.Fail()
	}
	return t
}

// raw reads any value and returns a copy of its bytes, as
// json.RawMessage's UnmarshalJSON keeps them (a null too).
func (d *Scanner) Raw() json.RawMessage {
	start := d.Skip()
	return append(json.RawMessage(nil), d.b[start:d.i]...)
}

// skip reads any value and returns where it started.
func (d *Scanner) Skip() int {
	c := d.peek()
	start := d.i
	switch {
	case c == '{':
		d.Object(func([]byte) { d.Skip() })
	case c == '[':
		d.Array(func() { d.Skip() })
	case c == '"':
		if raw, escaped := d.strBytes(); escaped {
			d.unescape(raw) // only to check it
		} else if !utf8.Valid(raw) {
			d.Fail()
		}
	case c == 'n':
		d.Null()
	case c == 't' && bytes.HasPrefix(d.b[d.i:], []byte("true")):
		d.i += 4
	case c == 'f' && bytes.HasPrefix(d.b[d.i:], []byte("false")):
		d.i += 5
	default:
		d.number()
	}
	return start
}

// Strings reads an array of strings; null reads as nil and [] as an
// empty slice, as encoding/json makes them.
func (d *Scanner) Strings() []string {
	var out []string
	if d.Array(func() { out = append(out, d.Str()) }) && out == nil {
		out = []string{}
	}
	return out
}

// Ints is Strings for whole numbers.
func (d *Scanner) Ints() []int {
	var out []int
	if d.Array(func() { out = append(out, d.Int()) }) && out == nil {
		out = []int{}
	}
	return out
}

// stringMap reads an object of strings; null reads as nil and {} as an
// empty map, as encoding/json makes them. A name given twice keeps the
// last value, as there.
func (d *Scanner) StringMap() map[string]string {
	if d.Null() {
		return nil
	}
	out := map[string]string{}
	d.MapMembers(func(k string) { out[k] = d.Str() })
	return out
}

// mapMembers reads an object whose member names are map keys (escapes
// allowed), calling member with each.
func (d *Scanner) MapMembers(member func(k string)) {
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
			d.Fail()
		}
	}
}

// key reads a member name and the colon after it.
func (d *Scanner) key() string {
	raw, escaped := d.strBytes()
	d.expect(':')
	if escaped {
		return d.unescape(raw)
	}
	if !utf8.Valid(raw) {
		d.Fail()
	}
	return string(raw)
}
