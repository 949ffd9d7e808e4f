package plan

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/llorch/llorch/config"
)

// Addr is a parsed pool or replica address: pool.chat, pool.embed["bge"],
// pool.x[0], pool.chat/r1.
type Addr struct {
	Name     string // the pool block's label
	Key      string // the for_each key, when HasKey
	Index    int    // the count index, when HasIndex
	HasKey   bool
	HasIndex bool
	Replica  string // "r1" for a replica address, "" for a pool
}

// ParseAddr parses a pool or replica address as written on the command line
// (-target, -replace) or recorded in state.
func ParseAddr(s string) (Addr, error) {
	a, reason := parseAddr(s)
	if reason != "" {
		return a, fmt.Errorf("%q is not a pool address: %s", s, reason)
	}
	return a, nil
}

// parseAddr parses s and says what is wrong with it, if anything.
func parseAddr(s string) (Addr, string) {
	var a Addr
	rest, ok := strings.CutPrefix(s, "pool.")
	if !ok {
		return a, `it does not start with "pool."`
	}
	// A name is an HCL identifier: ASCII letters, digits, "_" and "-", or
	// Unicode letters; it ends where an instance key or replica begins.
	n := 0
	for n < len(rest) && (rest[n] >= utf8.RuneSelf || isNameByte(rest[n], n == 0)) {
		n++
	}
	if n == 0 {
		return a, `there is no pool name after "pool."`
	}
	if !hclsyntax.ValidIdentifier(rest[:n]) {
		return a, fmt.Sprintf("%q is not a valid pool name", rest[:n])
	}
	a.Name, rest = rest[:n], rest[n:]
	if r, ok := strings.CutPrefix(rest, "["); ok {
		var reason string
		if strings.HasPrefix(r, `"`) {
			a.Key, rest, reason = unquoteKey(r)
			a.HasKey = true
		} else {
			a.Index, rest, reason = parseIndex(r)
			a.HasIndex = true
		}
		if reason != "" {
			return Addr{}, reason
		}
	}
	if rest == "" {
		return a, ""
	}
	id, ok := strings.CutPrefix(rest, "/")
	if !ok || !validReplicaID(id) {
		return a, fmt.Sprintf("%q follows the pool address", rest)
	}
	a.Replica = id
	return a, ""
}

// parseIndex reads a count index and its closing "]" from the start of s.
func parseIndex(s string) (int, string, string) {
	digits, rest, ok := strings.Cut(s, "]")
	if !ok {
		return 0, "", `the instance key has no closing "]"`
	}
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, "", fmt.Sprintf("the instance key [%s] is neither a quoted for_each key nor a count index", digits)
	}
	i, err := strconv.Atoi(digits)
	if err != nil {
		return 0, "", fmt.Sprintf("the instance key [%s] is too large for a count index", digits)
	}
	return i, rest, ""
}

// unquoteKey reads an HCL string literal and its closing "]" from the
// start of s (which begins with the opening quote): the escapes
// config.QuoteKey writes (\\ \" \n \r \t \uXXXX, also \UXXXXXXXX) and the
// template escapes $${ and %%{. A bare ${ or %{ is a template, which an
// address cannot hold.
func unquoteKey(s string) (key, rest, reason string) {
	var b strings.Builder
	for i := 1; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			rest, ok := strings.CutPrefix(s[i+1:], "]")
			if !ok {
				return "", "", fmt.Sprintf(`the instance key %s is not followed by "]"`, s[:i+1])
			}
			return b.String(), rest, ""
		case c == '\\':
			r, n := unescape(s[i:])
			if n == 0 {
				return "", "", fmt.Sprintf("the instance key has an invalid escape sequence %q; quote it as in the configuration", prefixRunes(s[i:], 2))
			}
			b.WriteRune(r)
			i += n
		case (c == '$' || c == '%') && strings.HasPrefix(s[i+1:], string(c)+"{"):
			b.WriteString(s[i+1 : i+3])
			i += 3
		case (c == '$' || c == '%') && strings.HasPrefix(s[i+1:], "{"):
			return "", "", fmt.Sprintf("the instance key holds a template sequence %q; write %c%c{ for a literal %c{", s[i:i+2], c, c, c)
		case c == '\n':
			return "", "", `the instance key has no closing quote before the end of the line`
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return "", "", "the instance key is not valid UTF-8"
			}
			b.WriteRune(r)
			i += n
		}
	}
	return "", "", `the instance key has no closing quote and "]"`
}

// unescape decodes the escape sequence s starts with and returns the rune
// and the bytes it took, 0 when it is not valid.
func unescape(s string) (rune, int) {
	if len(s) < 2 {
		return 0, 0
	}
	switch s[1] {
	case '\\':
		return '\\', 2
	case '"':
		return '"', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u', 'U':
		n := 4
		if s[1] == 'U' {
			n = 8
		}
		if len(s) < 2+n {
			return 0, 0
		}
		v, err := strconv.ParseUint(s[2:2+n], 16, 32)
		if err != nil || !utf8.ValidRune(rune(v)) {
			return 0, 0
		}
		return rune(v), 2 + n
	}
	return 0, 0
}

// prefixRunes is the first n runes of s.
func prefixRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c >= '0' && c <= '9', c == '-':
		return !first
	}
	return false
}

func validReplicaID(id string) bool {
	_, ok := ReplicaIndex(id)
	return ok
}

// ReplicaIndex returns N for the replica id "rN"; ok is false for anything
// else ("r01", "replica1", "").
func ReplicaIndex(id string) (n int, ok bool) {
	digits, ok := strings.CutPrefix(id, "r")
	if !ok || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' || n > 1<<24 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// String formats a in the canonical form state and config use.
func (a Addr) String() string {
	s := a.PoolAddr()
	if a.Replica != "" {
		s += "/" + a.Replica
	}
	return s
}

// PoolAddr is the address of a's pool instance (without the replica).
func (a Addr) PoolAddr() string {
	s := "pool." + a.Name
	switch {
	case a.HasKey:
		s += "[" + config.QuoteKey(a.Key) + "]"
	case a.HasIndex:
		s += "[" + strconv.Itoa(a.Index) + "]"
	}
	return s
}

// Contains reports whether the pool or replica at b is a itself or lies
// within a: pool.embed contains pool.embed["bge"] and pool.embed["bge"]/r0;
// a replica address contains only itself.
func (a Addr) Contains(b Addr) bool {
	if a.Name != b.Name {
		return false
	}
	sameInstance := a.HasKey == b.HasKey && a.HasIndex == b.HasIndex && a.Key == b.Key && a.Index == b.Index
	if a.Replica != "" {
		return sameInstance && a.Replica == b.Replica
	}
	// A whole-pool address without a key covers every instance.
	return sameInstance || (!a.HasKey && !a.HasIndex)
}

// IsReplica reports whether a names one replica (pool.chat/r1) rather
// than a pool.
func (a Addr) IsReplica() bool { return a.Replica != "" }

// ReplicaID returns the id of the i-th replica: "r0", "r1", …
func ReplicaID(i int) string { return "r" + strconv.Itoa(i) }

// ReplicaAddr joins a pool address and a replica id: "pool.chat/r1".
func ReplicaAddr(pool, id string) string { return pool + "/" + id }

// SplitReplicaAddr splits a canonical address (as config and state write
// it) "pool.chat/r1" into "pool.chat" and "r1"; a pool address comes back
// with an empty id. It agrees with ParseAddr on every canonical address
// (FuzzAddr checks) without parsing the key; addresses a user typed go
// through ParseAddr.
func SplitReplicaAddr(addr string) (pool, id string) {
	i := strings.LastIndexByte(addr, '/')
	// A "/" inside a quoted for_each key is never followed by a bare "rN"
	// at the end of the address: the key's closing `"]` comes last.
	if i < 0 || !validReplicaID(addr[i+1:]) {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}

// lessReplicaID orders replica ids by number, so r2 comes before r10.
func lessReplicaID(a, b string) bool {
	ai, aok := ReplicaIndex(a)
	bi, bok := ReplicaIndex(b)
	if aok && bok {
		return ai < bi
	}
	return a < b
}

// CompareAddr orders change addresses: by pool address, the pool's own
// change before its replicas, replicas by number.
func CompareAddr(a, b string) int {
	ap, ar := SplitReplicaAddr(a)
	bp, br := SplitReplicaAddr(b)
	if c := strings.Compare(ap, bp); c != 0 {
		return c
	}
	switch {
	case ar == br:
		return 0
	case ar == "":
		return -1
	case br == "":
		return 1
	case lessReplicaID(ar, br):
		return -1
	default:
		return 1
	}
}
