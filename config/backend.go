package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/llorch/llorch/internal/didyoumean"
)

// Backend is the llorch {} block's backend "TYPE" {} block: where the
// state lives when it is not the local file. Like Terraform's backend
// block it takes no variables, and no secrets: etcd's user name and
// password come from LLORCH_ETCD_USERNAME and LLORCH_ETCD_PASSWORD.
type Backend struct {
	Type        string   // "etcd"
	Endpoints   []string // client URLs, http:// or https://
	Prefix      string   // default "llorch/"; ends with "/"
	LockTTL     time.Duration
	DialTimeout time.Duration
	TLS         *BackendTLS
	DeclRange   hcl.Range
}

// BackendTLS is the etcd backend's tls {} block: PEM files, relative to
// the working directory.
type BackendTLS struct {
	CAFile, CertFile, KeyFile string
}

// Identity is what says whether two backend blocks store the same state:
// the type, the endpoints and the prefix (not timeouts or credentials).
func (b *Backend) Identity() string {
	if b == nil {
		return "local"
	}
	return b.Type + " " + strings.Join(b.Endpoints, ",") + " " + b.Prefix
}

// Defaults of the etcd backend block.
const (
	DefaultEtcdPrefix      = "llorch/"
	DefaultEtcdLockTTL     = 15 * time.Second
	DefaultEtcdDialTimeout = 2 * time.Second
)

var backendTypes = []string{"etcd"}

var etcdSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "endpoints"}, {Name: "prefix"}, {Name: "lock_ttl"}, {Name: "dial_timeout"},
		{Name: "username"}, {Name: "password"}, // refused, with where they go instead
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "tls"}},
}

var tlsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "ca_file"}, {Name: "cert_file"}, {Name: "key_file"}},
}

// decodeBackend decodes the backend blocks of the llorch block.
func (l *loader) decodeBackend(blocks []*hcl.Block) *Backend {
	if len(blocks) == 0 {
		return nil
	}
	for _, b := range blocks[1:] {
		l.errorf(b.DefRange.Ptr(), "Duplicate backend block",
			"Only one backend block is allowed. Another was defined at %s.", l.pos(blocks[0].DefRange))
	}
	b := blocks[0]
	typ := b.Labels[0]
	if typ != "etcd" {
		hint := ""
		if s := didyoumean.NameSuggestion(typ, backendTypes); s != "" {
			hint = fmt.Sprintf(" Did you mean %q?", s)
		}
		l.errorf(b.LabelRanges[0].Ptr(), "Unsupported backend type",
			"There is no backend %q.%s llorch stores state in etcd (backend \"etcd\"), or, without a backend block, in the local file <state_dir>/state.json.", typ, hint)
		return nil
	}
	content, diags := b.Body.Content(etcdSchema)
	l.diags = append(l.diags, diags...)
	be := &Backend{Type: typ, Prefix: DefaultEtcdPrefix, LockTTL: DefaultEtcdLockTTL, DialTimeout: DefaultEtcdDialTimeout, DeclRange: b.DefRange}
	ok := !diags.HasErrors()
	for _, name := range []string{"username", "password"} {
		if a, found := content.Attributes[name]; found {
			l.errorf(a.NameRange.Ptr(), "Credentials in the configuration",
				"The etcd backend takes its user name and password from the environment variables LLORCH_ETCD_USERNAME and LLORCH_ETCD_PASSWORD, so that no secret is written in a configuration kept in git. Remove %s here and set LLORCH_ETCD_%s.", name, strings.ToUpper(name))
			ok = false
		}
	}
	if a, found := content.Attributes["endpoints"]; !found {
		l.errorf(b.Body.MissingItemRange().Ptr(), "Missing required argument",
			`The backend "etcd" block needs endpoints: the client URLs of the etcd cluster, like endpoints = ["http://127.0.0.1:2379"].`)
		ok = false
	} else if eps, good := l.endpoints(a); good {
		be.Endpoints = eps
	} else {
		ok = false
	}
	if a, found := content.Attributes["prefix"]; found {
		if s, good := l.settingString(a); !good {
			ok = false
		} else if s == "" || !strings.HasSuffix(s, "/") {
			l.errorf(a.Expr.Range().Ptr(), "Invalid etcd prefix",
				`prefix %q must end with "/", like "llorch/prod/", so that the keys of one registry never begin with another's prefix.`, s)
			ok = false
		} else {
			be.Prefix = s
		}
	}
	if d, good := l.settingDuration(content.Attributes["lock_ttl"], "lock_ttl"); !good {
		ok = false
	} else if d > 0 {
		if d < time.Second || d%time.Second != 0 {
			l.errorf(content.Attributes["lock_ttl"].Expr.Range().Ptr(), "Invalid duration",
				`lock_ttl must be a whole number of seconds, at least "1s", like "15s": etcd leases count in seconds.`)
			ok = false
		}
		be.LockTTL = d
	}
	if d, good := l.settingDuration(content.Attributes["dial_timeout"], "dial_timeout"); !good {
		ok = false
	} else if d > 0 {
		be.DialTimeout = d
	}
	for i, tb := range content.Blocks {
		if i > 0 {
			l.errorf(tb.DefRange.Ptr(), "Duplicate tls block",
				"Only one tls block is allowed. Another was defined at %s.", l.pos(content.Blocks[0].DefRange))
			ok = false
			continue
		}
		t, good := l.tlsBlock(tb)
		if !good {
			ok = false
			continue
		}
		for _, ep := range be.Endpoints {
			if strings.HasPrefix(ep, "http://") {
				l.errorf(tb.DefRange.Ptr(), "TLS settings for a plain endpoint",
					"The tls block sets certificates, but the endpoint %q is http://: use https:// for every endpoint of a cluster that serves TLS, or remove the tls block.", ep)
				ok = false
				break
			}
		}
		be.TLS = t
	}
	if !ok {
		return nil
	}
	return be
}

// endpoints reads and checks endpoints = [...].
func (l *loader) endpoints(a *hcl.Attribute) ([]string, bool) {
	v, diags := a.Expr.Value(&hcl.EvalContext{Functions: l.funcs})
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return nil, false
	}
	lv, err := convert.Convert(unmarked(v), cty.List(cty.String))
	if err != nil || lv.IsNull() || !lv.IsWhollyKnown() {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type",
			`endpoints must be a list of URLs, like ["http://10.0.0.1:2379", "http://10.0.0.2:2379"].`)
		return nil, false
	}
	eps := stringSlice(lv)
	if len(eps) == 0 {
		l.errorf(a.Expr.Range().Ptr(), "Invalid etcd endpoint",
			`endpoints is empty: give the client URL of at least one etcd member, like ["http://127.0.0.1:2379"].`)
		return nil, false
	}
	ok := true
	for _, ep := range eps {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			l.errorf(a.Expr.Range().Ptr(), "Invalid etcd endpoint",
				`%q is not an etcd client URL: write the scheme, host and port, like "http://127.0.0.1:2379" (https:// for TLS).`, ep)
			ok = false
		}
	}
	return eps, ok
}

func (l *loader) tlsBlock(b *hcl.Block) (*BackendTLS, bool) {
	content, diags := b.Body.Content(tlsSchema)
	l.diags = append(l.diags, diags...)
	ok := !diags.HasErrors()
	var t BackendTLS
	for name, dst := range map[string]*string{"ca_file": &t.CAFile, "cert_file": &t.CertFile, "key_file": &t.KeyFile} {
		if a, found := content.Attributes[name]; found {
			s, good := l.settingString(a)
			if !good || s == "" {
				if good {
					l.errorf(a.Expr.Range().Ptr(), "Invalid file name", "%s must not be empty. Remove the attribute if there is no such file.", name)
				}
				ok = false
				continue
			}
			*dst = s
		}
	}
	if ok && (t.CertFile == "") != (t.KeyFile == "") {
		l.errorf(b.DefRange.Ptr(), "Incomplete client certificate",
			"cert_file and key_file go together: a client certificate needs its key. Set both, or neither.")
		ok = false
	}
	return &t, ok
}

// settingString evaluates a string attribute of the llorch block (no
// variables).
func (l *loader) settingString(a *hcl.Attribute) (string, bool) {
	v, diags := a.Expr.Value(&hcl.EvalContext{Functions: l.funcs})
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return "", false
	}
	sv, err := convert.Convert(unmarked(v), cty.String)
	if err != nil || sv.IsNull() || !sv.IsWhollyKnown() {
		l.errorf(a.Expr.Range().Ptr(), "Incorrect attribute value type", "Inappropriate value for attribute %q: a string is required.", a.Name)
		return "", false
	}
	return sv.AsString(), true
}

// settingDuration reads an optional, positive duration attribute; 0 when
// absent.
func (l *loader) settingDuration(a *hcl.Attribute, name string) (time.Duration, bool) {
	if a == nil {
		return 0, true
	}
	s, ok := l.settingString(a)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		l.errorf(a.Expr.Range().Ptr(), "Invalid duration", `%q is not a duration; use a number and a unit, like "30s" or "5m".`, s)
	case d <= 0:
		l.errorf(a.Expr.Range().Ptr(), "Invalid duration", `%s must be more than zero, like "15s".`, name)
	default:
		return d, true
	}
	return 0, false
}
