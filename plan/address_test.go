package plan

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spf13/afero"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
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
		{name: "key holding a quote", in: `pool.embed["q\"t"]/r0`, want: Addr{Name: "embed", Key: `q"t`, HasKey: true, Replica: "r0"}},
		{name: "key holding a space", in: `pool.embed["sp ace"]`, want: Addr{Name: "embed", Key: "sp ace", HasKey: true}},
		{name: "unicode key", in: `pool.embed["ünï"]/r1`, want: Addr{Name: "embed", Key: "ünï", HasKey: true, Replica: "r1"}},
		{name: "unicode name", in: "pool.ünï/r0", want: Addr{Name: "ünï", Replica: "r0"}},
		{name: "template escapes", in: `pool.m["$${x} %%{y} $z"]`, want: Addr{Name: "m", Key: "${x} %{y} $z", HasKey: true}},
		{name: "control character", in: `pool.m["\u0001\n"]`, want: Addr{Name: "m", Key: "\x01\n", HasKey: true}},
		{name: "unclosed key", in: `pool.embed["bge"`, wantErr: `the instance key "bge" is not followed by "]"`},
		{name: "unclosed quote", in: `pool.embed["bge]`, wantErr: `the instance key has no closing quote and "]"`},
		{name: "unclosed index", in: `pool.x[1`, wantErr: `the instance key has no closing "]"`},
		{name: "template in key", in: `pool.m["${x}"]`, wantErr: `the instance key holds a template sequence "${"; write $${ for a literal ${`},
		{name: "not a name", in: "pool.a€/r0", wantErr: `"a€" is not a valid pool name`},
		{name: "bad key", in: "pool.x[one]", wantErr: "the instance key [one] is neither a quoted for_each key nor a count index"},
		{name: "negative index", in: "pool.x[-1]", wantErr: "the instance key [-1] is neither"},
		{name: "bad quoted key", in: `pool.x["a\q"]`, wantErr: `the instance key has an invalid escape sequence "\\q"`},
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

// FuzzAddr checks the address grammar both ways: any text ParseAddr
// accepts formats back to an address that parses to the same thing, and
// SplitReplicaAddr agrees with it; any for_each key (as text) round trips
// through String and ParseAddr. The seeds run as part of `go test`.
func FuzzAddr(f *testing.F) {
	for _, s := range []string{
		"pool.chat", "pool.chat/r1", "pool.x[3]", "pool.x[3]/r0", `pool.embed["bge"]`,
		`pool.embed["a/b"]/r2`, `pool.embed["a/r1"]`, `pool.embed["q\"t"]`, `pool.embed["x]y"]/r0`,
		`pool.embed["sp ace"]`, `pool.embed["ünï"]/r10`, "pool.ünï", `pool.m["$${x} %%{y} $z"]`,
		`pool.m["\u0001\\\n"]`, `pool.m["\U0001F600"]`, `pool.m[""]`, `pool.m["]"]/r0`, `pool.m["/r0"]`,
		"pool.x[007]", "pool.chat.x", "pool.", `pool.m["${x}"]`, `pool.m["\q"]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := ParseAddr(s); err == nil {
			text := a.String()
			b, err := ParseAddr(text)
			if err != nil {
				t.Fatalf("ParseAddr(%q) = %+v, whose String %q does not parse: %v", s, a, text, err)
			}
			if b != a {
				t.Fatalf("ParseAddr(%q) = %+v; its String %q parses to %+v", s, a, text, b)
			}
			if b.String() != text {
				t.Fatalf("String is not stable: %q, then %q", text, b.String())
			}
			if pool, id := SplitReplicaAddr(text); pool != a.PoolAddr() || id != a.Replica {
				t.Fatalf("SplitReplicaAddr(%q) = %q, %q; ParseAddr says %q, %q", text, pool, id, a.PoolAddr(), a.Replica)
			}
		}
		if !utf8.ValidString(s) {
			return // cty keeps strings valid UTF-8: no for_each key is otherwise
		}
		for _, a := range []Addr{{Name: "embed", Key: s, HasKey: true}, {Name: "embed", Key: s, HasKey: true, Replica: "r7"}} {
			text := a.String()
			b, err := ParseAddr(text)
			if err != nil {
				t.Fatalf("key %q: address %q does not parse: %v", s, text, err)
			}
			if b != a {
				t.Fatalf("key %q: address %q parses to %+v, want %+v", s, text, b, a)
			}
			if pool, id := SplitReplicaAddr(text); pool != a.PoolAddr() || id != a.Replica {
				t.Fatalf("SplitReplicaAddr(%q) = %q, %q; want %q, %q", text, pool, id, a.PoolAddr(), a.Replica)
			}
		}
	})
}

// TestConfigAddressesParseBack: every pool address config writes, whatever
// its for_each keys or name hold, parses to the pool's name and key and
// formats back to itself, so state, plan and CLI agree on it.
func TestConfigAddressesParseBack(t *testing.T) {
	keys := []string{"a/b", `q"t`, "x]y", "sp ace", "ünï", "${x}", "%{y}", "a\\b\\c", "tab\there", "\x01", "/r0", "😀x"}
	var quoted []string
	for _, k := range keys {
		quoted = append(quoted, config.QuoteKey(k))
	}
	src := `pool "embed" {
  for_each = toset([` + strings.Join(quoted, ", ") + `])
  engine   = "llamacpp"
  model {
    ref = "file:/m.gguf"
  }
}
pool "ünï" {
  count  = 2
  engine = "llamacpp"
  model {
    ref = "file:/m.gguf"
  }
}
`
	fs := afero.NewMemMapFs()
	if err := afero.WriteFile(fs, "/w/main.llorch.hcl", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(fs, "/w", config.LoadOptions{Engines: []string{"llamacpp"}, Environ: []string{}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(cfg.Pools) != len(keys)+2 {
		t.Fatalf("loaded %d pools, want %d", len(cfg.Pools), len(keys)+2)
	}
	for _, p := range cfg.Pools {
		a, err := ParseAddr(p.Addr)
		if err != nil {
			t.Errorf("config address %s: %v", p.Addr, err)
			continue
		}
		if a.Name != p.Name || a.String() != p.Addr {
			t.Errorf("config address %s parses to %+v, which formats as %s", p.Addr, a, a.String())
		}
		if p.Key.Type() == cty.String && (!a.HasKey || a.Key != p.Key.AsString()) {
			t.Errorf("config address %s parses to key %q, want %q", p.Addr, a.Key, p.Key.AsString())
		}
		r := ReplicaAddr(p.Addr, ReplicaID(1))
		if pool, id := SplitReplicaAddr(r); pool != p.Addr || id != "r1" {
			t.Errorf("SplitReplicaAddr(%s) = %s, %s", r, pool, id)
		}
	}
}
