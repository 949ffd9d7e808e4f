package plan

import (
	"slices"
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Addr
		wantErr string
	}{
		{name: "plain pool", in: "pool.chat", want: Addr{Name: "chat"}},
		{name: "for_each instance", in: `pool.embed["bge"]`, want: Addr{Name: "embed", Key: "bge", HasKey: true}},
		{name: "count instance", in: "pool.x[3]", want: Addr{Name: "x", Index: 3, HasIndex: true}},
		{name: "replica of a plain pool", in: "pool.chat/r1", want: Addr{Name: "chat", Replica: "r1"}},
		{name: "replica of an instance", in: `pool.embed["bge"]/r10`, want: Addr{Name: "embed", Key: "bge", HasKey: true, Replica: "r10"}},
		{name: "key holding a slash and a bracket", in: `pool.embed["a/r1]"]`, want: Addr{Name: "embed", Key: "a/r1]", HasKey: true}},
		{name: "name with dash and digits", in: "pool.chat-2", want: Addr{Name: "chat-2"}},
		{name: "missing prefix", in: "chat", wantErr: `"chat" is not a pool address: it does not start with "pool."`},
		{name: "missing name", in: "pool.", wantErr: `"pool." is not a pool address: there is no pool name after "pool."`},
		{name: "unclosed key", in: `pool.embed["bge"`, wantErr: `the instance key has no closing "]"`},
		{name: "bad key", in: "pool.x[one]", wantErr: "the instance key [one] is neither a quoted for_each key nor a count index"},
		{name: "negative index", in: "pool.x[-1]", wantErr: "the instance key [-1] is neither"},
		{name: "bad quoted key", in: `pool.x["a\q"]`, wantErr: `the instance key "a\q" is not a valid quoted string`},
		{name: "bad replica", in: "pool.chat/replica1", wantErr: `"/replica1" follows the pool address`},
		{name: "replica with leading zero", in: "pool.chat/r01", wantErr: `"/r01" follows the pool address`},
		{name: "trailing junk", in: "pool.chat.x", wantErr: `".x" follows the pool address`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAddr(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAddr(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAddr(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseAddr(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want the input back", got.String())
			}
		})
	}
}

func TestAddrContains(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"pool.embed", `pool.embed["bge"]`, true},
		{"pool.embed", `pool.embed["bge"]/r0`, true},
		{"pool.embed", "pool.embedding", false},
		{`pool.embed["bge"]`, `pool.embed["e5"]`, false},
		{`pool.embed["bge"]`, `pool.embed["bge"]/r1`, true},
		{"pool.x[0]", "pool.x[1]", false},
		{"pool.chat/r1", "pool.chat/r1", true},
		{"pool.chat/r1", "pool.chat/r2", false},
		{"pool.chat/r1", "pool.chat", false},
		{"pool.embed/r1", `pool.embed["bge"]/r1`, false},
	}
	for _, tc := range tests {
		t.Run(tc.a+" contains "+tc.b, func(t *testing.T) {
			a, _ := ParseAddr(tc.a)
			b, _ := ParseAddr(tc.b)
			if got := a.Contains(b); got != tc.want {
				t.Fatalf("Contains = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSplitReplicaAddr(t *testing.T) {
	tests := []struct{ in, pool, id string }{
		{"pool.chat/r1", "pool.chat", "r1"},
		{"pool.chat", "pool.chat", ""},
		{`pool.embed["x/r1"]`, `pool.embed["x/r1"]`, ""},
		{`pool.embed["x/r1"]/r2`, `pool.embed["x/r1"]`, "r2"},
	}
	for _, tc := range tests {
		pool, id := SplitReplicaAddr(tc.in)
		if pool != tc.pool || id != tc.id {
			t.Errorf("SplitReplicaAddr(%q) = %q, %q; want %q, %q", tc.in, pool, id, tc.pool, tc.id)
		}
	}
}

func TestCompareAddrPutsPoolBeforeItsReplicasInNumericOrder(t *testing.T) {
	addrs := []string{"pool.chat/r10", "pool.chat2", "pool.chat/r2", "pool.chat", `pool.embed["bge"]/r0`, `pool.embed["bge"]`}
	slices.SortFunc(addrs, CompareAddr)
	want := []string{"pool.chat", "pool.chat/r2", "pool.chat/r10", "pool.chat2", `pool.embed["bge"]`, `pool.embed["bge"]/r0`}
	if !slices.Equal(addrs, want) {
		t.Fatalf("sorted = %q, want %q", addrs, want)
	}
}
