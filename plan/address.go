package plan

import (
	"fmt"
	"strconv"
	"strings"
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
	n := 0
	for n < len(rest) && isNameByte(rest[n], n == 0) {
		n++
	}
	if n == 0 {
		return a, `there is no pool name after "pool."`
	}
	a.Name, rest = rest[:n], rest[n:]
	if strings.HasPrefix(rest, "[") {
		end := instanceKeyEnd(rest)
		if end < 0 {
			return a, `the instance key has no closing "]"`
		}
		key := rest[1 : end-1]
		rest = rest[end:]
		if strings.HasPrefix(key, `"`) {
			k, err := strconv.Unquote(key)
			if err != nil {
				return a, fmt.Sprintf("the instance key %s is not a valid quoted string", key)
			}
			a.Key, a.HasKey = k, true
		} else {
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 {
				return a, fmt.Sprintf("the instance key [%s] is neither a quoted for_each key nor a count index", key)
			}
			a.Index, a.HasIndex = i, true
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

// instanceKeyEnd returns the index just past the "]" closing the instance
// key that s starts with, honouring quotes; -1 when there is none.
func instanceKeyEnd(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ']':
			return i + 1
		}
	}
	return -1
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
	_, ok := replicaIndex(id)
	return ok
}

// replicaIndex returns N for "rN".
func replicaIndex(id string) (int, bool) {
	digits, ok := strings.CutPrefix(id, "r")
	if !ok || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	n := 0
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
		s += "[" + strconv.Quote(a.Key) + "]"
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

// ReplicaID returns the id of the i-th replica: "r0", "r1", …
func ReplicaID(i int) string { return "r" + strconv.Itoa(i) }

// ReplicaAddr joins a pool address and a replica id: "pool.chat/r1".
func ReplicaAddr(pool, id string) string { return pool + "/" + id }

// SplitReplicaAddr splits "pool.chat/r1" into "pool.chat" and "r1"; a pool
// address comes back with an empty id.
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
	ai, aok := replicaIndex(a)
	bi, bok := replicaIndex(b)
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
