package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackendBlock(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `llorch {
  backend "etcd" {
    endpoints    = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    prefix       = "llorch/prod/"
    lock_ttl     = "30s"
    dial_timeout = "5s"
  }
}
`}, LoadOptions{})
	b := cfg.Settings.Backend
	if b == nil {
		t.Fatal("no backend decoded")
	}
	want := Backend{Type: "etcd", Endpoints: []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}, Prefix: "llorch/prod/", LockTTL: 30 * time.Second, DialTimeout: 5 * time.Second, DeclRange: b.DeclRange}
	if diff := cmp.Diff(want, *b); diff != "" {
		t.Errorf("backend (-want +got):\n%s", diff)
	}
	if b.DeclRange.Start.Line != 2 {
		t.Errorf("DeclRange = %v, want line 2", b.DeclRange)
	}
	if got := b.Identity(); got != "etcd http://10.0.0.1:2379,http://10.0.0.2:2379 llorch/prod/" {
		t.Errorf("Identity = %q", got)
	}
}

func TestBackendDefaultsAndTLS(t *testing.T) {
	cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `llorch {
  backend "etcd" {
    endpoints = ["https://etcd.internal:2379"]
    tls {
      ca_file   = "ca.pem"
      cert_file = "client.pem"
      key_file  = "client-key.pem"
    }
  }
}
`}, LoadOptions{})
	b := cfg.Settings.Backend
	if b.Prefix != "llorch/" || b.LockTTL != 15*time.Second || b.DialTimeout != 2*time.Second {
		t.Errorf("defaults = %q, %s, %s", b.Prefix, b.LockTTL, b.DialTimeout)
	}
	if b.TLS == nil || *b.TLS != (BackendTLS{CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client-key.pem"}) {
		t.Errorf("TLS = %+v", b.TLS)
	}
	if settings, diags := LoadSettings(memFS(t, map[string]string{"a.llorch.hcl": `llorch {
  backend "etcd" { endpoints = ["http://127.0.0.1:2379"] }
}
pool "x" { engine = var.undefined }
`}), "."); diags.HasErrors() || settings.Settings.Backend == nil {
		t.Errorf("LoadSettings: backend %v, %v", settings.Settings.Backend, diags)
	}
	if cfg := mustLoad(t, map[string]string{"main.llorch.hcl": `llorch {}`}, LoadOptions{}); cfg.Settings.Backend != nil {
		t.Error("no backend block gave a backend")
	}
}

func TestBackendErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown type", `llorch {
  backend "etdc" {}
}`, []string{`main.llorch.hcl:2:11: Unsupported backend type: There is no backend "etdc". Did you mean "etcd"? llorch stores state in etcd (backend "etcd"), or, without a backend block, in the local file <state_dir>/state.json.`}},
		{"two backends", `llorch {
  backend "etcd" { endpoints = ["http://a:2379"] }
  backend "etcd" { endpoints = ["http://b:2379"] }
}`, []string{`main.llorch.hcl:3:3: Duplicate backend block: Only one backend block is allowed. Another was defined at main.llorch.hcl:2.`}},
		{"no endpoints", `llorch {
  backend "etcd" {
  }
}`, []string{`main.llorch.hcl:2:18: Missing required argument: The backend "etcd" block needs endpoints: the client URLs of the etcd cluster, like endpoints = ["http://127.0.0.1:2379"].`}},
		{"empty endpoints", `llorch {
  backend "etcd" { endpoints = [] }
}`, []string{`main.llorch.hcl:2:32: Invalid etcd endpoint: endpoints is empty: give the client URL of at least one etcd member, like ["http://127.0.0.1:2379"].`}},
		{"endpoint without a scheme, endpoints not a list", `llorch {
  backend "etcd" { endpoints = ["127.0.0.1:2379", "http://h:2379"] }
}
`, []string{`main.llorch.hcl:2:32: Invalid etcd endpoint: "127.0.0.1:2379" is not an etcd client URL: write the scheme, host and port, like "http://127.0.0.1:2379" (https:// for TLS).`}},
		{"endpoints not a list", `llorch {
  backend "etcd" { endpoints = "http://h:2379" }
}`, []string{`main.llorch.hcl:2:32: Incorrect attribute value type: endpoints must be a list of URLs, like ["http://10.0.0.1:2379", "http://10.0.0.2:2379"].`}},
		{"prefix without a slash", `llorch {
  backend "etcd" {
    endpoints = ["http://h:2379"]
    prefix    = "llorch/prod"
  }
}`, []string{`main.llorch.hcl:4:17: Invalid etcd prefix: prefix "llorch/prod" must end with "/", like "llorch/prod/", so that the keys of one registry never begin with another's prefix.`}},
		{"bad durations", `llorch {
  backend "etcd" {
    endpoints    = ["http://h:2379"]
    lock_ttl     = "1500ms"
    dial_timeout = "soon"
  }
}`, []string{
			`main.llorch.hcl:4:20: Invalid duration: lock_ttl must be a whole number of seconds, at least "1s", like "15s": etcd leases count in seconds.`,
			`main.llorch.hcl:5:20: Invalid duration: "soon" is not a duration; use a number and a unit, like "30s" or "5m".`,
		}},
		{"credentials", `llorch {
  backend "etcd" {
    endpoints = ["http://h:2379"]
    password  = "hunter2"
  }
}`, []string{`main.llorch.hcl:4:5: Credentials in the configuration: The etcd backend takes its user name and password from the environment variables LLORCH_ETCD_USERNAME and LLORCH_ETCD_PASSWORD, so that no secret is written in a configuration kept in git. Remove password here and set LLORCH_ETCD_PASSWORD.`}},
		{"tls with http, half a client certificate", `llorch {
  backend "etcd" {
    endpoints = ["http://h:2379"]
    tls {
      cert_file = "c.pem"
    }
  }
}`, []string{`main.llorch.hcl:4:5: Incomplete client certificate: cert_file and key_file go together: a client certificate needs its key. Set both, or neither.`}},
		{"tls with http", `llorch {
  backend "etcd" {
    endpoints = ["https://a:2379", "http://h:2379"]
    tls {
      ca_file = "ca.pem"
    }
  }
}`, []string{`main.llorch.hcl:4:5: TLS settings for a plain endpoint: The tls block sets certificates, but the endpoint "http://h:2379" is http://: use https:// for every endpoint of a cluster that serves TLS, or remove the tls block.`}},
		{"unknown attribute", `llorch {
  backend "etcd" {
    endpoints = ["http://h:2379"]
    lock_tll  = "15s"
  }
}`, []string{`main.llorch.hcl:4:5: Unsupported argument: An argument named "lock_tll" is not expected here. Did you mean "lock_ttl"?`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := load(t, map[string]string{"main.llorch.hcl": tc.src}, LoadOptions{})
			got := diagStrings(diags)
			if !slices.Equal(got, tc.want) {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
