package etcd

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/llorch/llorch/internal/etcdtest"
	"github.com/llorch/llorch/state"
)

// TLS: the right CA and client certificate work; a wrong CA, or http://
// for a TLS server, is an error that says so.
func TestTLS(t *testing.T) {
	certs := etcdtest.NewCerts(t)
	srv := etcdtest.Start(t, etcdtest.Options{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, TrustedCAFile: certs.CAFile})
	ok := open(t, srv.Endpoint, newPrefix(), func(o *Options) {
		o.CAFile, o.CertFile, o.KeyFile = certs.CAFile, certs.ClientCert, certs.ClientKey
	})
	if _, err := ok.Read(t.Context()); err != nil {
		t.Fatalf("Read over TLS: %v", err)
	}

	other := etcdtest.NewCerts(t)
	tests := []struct {
		name     string
		endpoint string
		tune     func(*Options)
		want     []string
	}{
		{"a CA that did not sign the server's certificate", srv.Endpoint,
			func(o *Options) { o.CAFile, o.CertFile, o.KeyFile = other.CAFile, certs.ClientCert, certs.ClientKey },
			[]string{"etcd's TLS certificate could not be verified (etcd " + srv.Endpoint,
				srv.Endpoint + ": the server's certificate could not be verified with the CA in ca_file " + other.CAFile,
				"x509: certificate signed by unknown authority", "set ca_file to the CA that signed etcd's certificate"}},
		{"no CA: the system's", srv.Endpoint,
			func(o *Options) { o.CertFile, o.KeyFile = certs.ClientCert, certs.ClientKey },
			[]string{"could not be verified with the system's trusted CAs (tls { ca_file } is not set)"}},
		{"no client certificate", srv.Endpoint,
			func(o *Options) { o.CAFile = certs.CAFile },
			[]string{"etcd did not answer within 500ms", srv.Endpoint + ": it accepts TLS connections but did not answer", "does it require a client certificate, tls { cert_file key_file }?"}},
		{"http:// for a TLS server", strings.Replace(srv.Endpoint, "https://", "http://", 1), nil,
			[]string{"it accepts connections but did not answer", "is it serving TLS where http:// was given?"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, tc.endpoint, newPrefix(), func(o *Options) {
				o.DialTimeout = 500 * time.Millisecond
				if tc.tune != nil {
					tc.tune(o)
				}
			})
			_, err := s.Read(t.Context())
			var ue *UnreachableError
			if !errors.As(err, &ue) {
				t.Fatalf("Read: %v, want an *UnreachableError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// etcd's auth: wrong or missing credentials are errors that say which.
func TestAuth(t *testing.T) {
	ctx := t.Context()
	srv := etcdtest.Start(t, etcdtest.Options{})
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, step := range []func() error{
		func() error { _, err := admin.RoleAdd(ctx, "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "ci", "s3cret"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "nothing"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "ci", "nothing"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, user, password string
		want                 string
	}{
		{"wrong password", "root", "nope", `etcd refused user "root" and its password (from LLORCH_ETCD_USERNAME and LLORCH_ETCD_PASSWORD; etcd http://`},
		{"no credentials", "", "", "etcd requires a user name and password"},
		{"no permission on the prefix", "ci", "s3cret", `etcd user "ci" may not read and write the prefix`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, srv.Endpoint, newPrefix(), func(o *Options) { o.Username, o.Password = tc.user, tc.password })
			_, err := s.Read(ctx)
			var ae *AuthError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read: %v\nwant an *AuthError containing %q", err, tc.want)
			}
		})
	}
	s := open(t, srv.Endpoint, newPrefix(), func(o *Options) { o.Username, o.Password = "root", "rootpw" })
	st, err := s.Read(ctx)
	if err != nil {
		t.Fatalf("Read with the right credentials: %v", err)
	}
	id, err := s.Lock(ctx, state.LockInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, id); err != nil {
		t.Fatal(err)
	}
}
