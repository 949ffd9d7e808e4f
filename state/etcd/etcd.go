package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/afero"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/llorch/llorch/state"
)

// Defaults of Options.
const (
	DefaultPrefix         = "llorch/"
	DefaultLockTTL        = 15 * time.Second
	DefaultDialTimeout    = 2 * time.Second // as etcdctl's --dial-timeout
	DefaultRequestTimeout = 5 * time.Second // as etcdctl's --command-timeout
	DefaultErroredPath    = "errored.state.json"

	// refusedProbeDelay is how long a first request waits for an answer
	// before llorch dials the endpoints itself to see whether any listens.
	refusedProbeDelay = 100 * time.Millisecond

	// defaultPartSize and defaultTxnBytes keep every request well under
	// etcd's default --max-request-bytes (1.5 MiB).
	defaultPartSize = 512 << 10
	defaultTxnBytes = 1 << 20
)

// Options configure a Store.
type Options struct {
	Endpoints []string // "http://host:2379", "https://…"
	Prefix    string   // every key starts with it; DefaultPrefix when empty
	// Username and Password authenticate to etcd (etcd's auth), when set.
	Username, Password string
	// CAFile, CertFile and KeyFile are PEM files for TLS: the CA that
	// signed the servers' certificates (system roots when empty), and a
	// client certificate and key for servers that require one.
	CAFile, CertFile, KeyFile string

	LockTTL        time.Duration // lifetime of a lock whose holder is gone (whole seconds)
	DialTimeout    time.Duration // how long a first answer may take
	RequestTimeout time.Duration // how long any later request may take

	// ErroredPath receives the state when a write fails, on Fs.
	ErroredPath string
	Fs          afero.Fs
	// Version is recorded as llorch_version in the state and in lock info.
	Version string
	// Now is the clock for lock times (time.Now when nil).
	Now func() time.Time

	// PartSize and TxnBytes bound a stored part and the parts put in one
	// transaction (defaults keep requests under etcd's 1.5 MiB); tests
	// make them small to exercise a state stored in many parts.
	PartSize, TxnBytes int
}

// Store keeps state in etcd. It is safe for concurrent use; Close releases
// its connection.
type Store struct {
	opts        Options
	where       string // "etcd http://…, prefix llorch/prod/"
	lockKey     string
	headerKey   string
	partsPrefix string
	tlsConfig   *tls.Config
	schemeTLS   bool
	ctx         context.Context // cancelled by Close: ends keepalives
	cancel      context.CancelFunc

	connMu   sync.Mutex // guards cli, answered, down
	cli      *clientv3.Client
	answered bool  // etcd has answered a request
	down     error // why a request found etcd unreachable: later ones fail at once

	stateMu    sync.Mutex // guards known, prefetched, lostErr
	known      *observed  // the header as last read or written
	prefetched *prefetch

	lockMu           sync.Mutex // guards held, spare, lastHeld, lockSawHeaderRev
	held             *heldLock
	spare            *spareLease // a lease granted ahead of Lock
	lastHeld         int64       // revision at which Lock last found the lock held
	lockSawHeaderRev int64       // header mod revision the lock transaction saw (0: none)

	lostOnce sync.Once
	lost     chan struct{}
	lostErr  error
}

// observed is what a Store knows of the stored header.
type observed struct {
	rev int64   // mod revision of the header key; 0 when there is none
	at  int64   // the revision it was read (or written) at
	hdr *header // nil when there is none
}

var _ state.Store = (*Store)(nil)

// New returns the Store for opts. It does not connect: the first request
// does (Prefetch, Lock or Read).
func New(opts Options) (*Store, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("the etcd backend needs at least one endpoint")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = DefaultLockTTL
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.ErroredPath == "" {
		opts.ErroredPath = DefaultErroredPath
	}
	if opts.Fs == nil {
		opts.Fs = afero.NewOsFs()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PartSize <= 0 {
		opts.PartSize = defaultPartSize
	}
	if opts.TxnBytes <= 0 {
		opts.TxnBytes = defaultTxnBytes
	}
	s := &Store{
		opts:        opts,
		where:       fmt.Sprintf("etcd %s, prefix %s", strings.Join(opts.Endpoints, ","), opts.Prefix),
		lockKey:     opts.Prefix + "lock",
		headerKey:   opts.Prefix + "state",
		partsPrefix: opts.Prefix + "state/",
		lost:        make(chan struct{}),
	}
	for _, ep := range opts.Endpoints {
		if strings.HasPrefix(ep, "https://") {
			s.schemeTLS = true
		}
	}
	if opts.CAFile != "" || opts.CertFile != "" || opts.KeyFile != "" || s.schemeTLS {
		for _, f := range []struct{ name, path string }{{"ca_file", opts.CAFile}, {"cert_file", opts.CertFile}, {"key_file", opts.KeyFile}} {
			if f.path == "" {
				continue
			}
			data, err := os.ReadFile(f.path)
			if err != nil {
				return nil, fmt.Errorf("the tls { %s } of the backend \"etcd\" block cannot be read: %w; a relative path is relative to the configuration's directory", f.name, err)
			}
			// etcd's client takes a CA file without certificates as an
			// empty pool, and then trusts no server: say so here.
			if f.name == "ca_file" && !x509.NewCertPool().AppendCertsFromPEM(data) {
				return nil, fmt.Errorf("the tls { ca_file } of the backend \"etcd\" block, %s, holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\"): give the CA certificate that signed etcd's", f.path)
			}
		}
		info := transport.TLSInfo{CertFile: opts.CertFile, KeyFile: opts.KeyFile, TrustedCAFile: opts.CAFile}
		cfg, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("the tls { ca_file cert_file key_file } of the backend \"etcd\" block cannot be used: %w", err)
		}
		s.tlsConfig = cfg
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Where names the backend in messages: endpoints and prefix.
func (s *Store) Where() string { return s.where }

// Close ends the Store's leases and its connection. A lock still held is
// released.
func (s *Store) Close() error {
	s.lockMu.Lock()
	h, spare := s.held, s.spare
	s.held, s.spare = nil, nil
	s.lockMu.Unlock()
	if h != nil {
		_ = s.releaseLease(h.lease, h.release)
	}
	if spare != nil {
		_ = s.releaseLease(spare, nil)
	}
	s.cancel()
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.cli != nil {
		err := s.cli.Close()
		s.cli = nil
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

// client connects on first use.
func (s *Store) client() (*clientv3.Client, error) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.cli != nil {
		return s.cli, nil
	}
	if s.ctx.Err() != nil {
		return nil, errors.New("the etcd store is closed")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   s.opts.Endpoints,
		DialTimeout: s.opts.DialTimeout,
		Username:    s.opts.Username,
		Password:    s.opts.Password,
		TLS:         s.tlsConfig,
		Context:     s.ctx,
		Logger:      zap.NewNop(), // failures are reported as errors, not logged
		// Parts are at most PartSize; a whole state may come back in one
		// response, which the default already allows.
		MaxCallSendMsgSize: max(2<<20, s.opts.TxnBytes+(256<<10)),
	})
	if err != nil {
		return nil, s.explain(err)
	}
	s.cli = cli
	return cli, nil
}

// call runs fn with the client and a timeout: the dial timeout until etcd
// has answered once, the request timeout after. Errors are explained.
func (s *Store) call(ctx context.Context, fn func(ctx context.Context, cli *clientv3.Client) error) error {
	s.connMu.Lock()
	down, answered := s.down, s.answered
	s.connMu.Unlock()
	if down != nil {
		return down // found unreachable moments ago: do not wait again
	}
	cli, err := s.client()
	if err != nil {
		return err
	}
	timeout := s.opts.RequestTimeout
	if !answered {
		timeout = s.opts.DialTimeout
	}
	if conn := cli.ActiveConnection(); conn != nil && conn.GetState() == connectivity.TransientFailure {
		// The connection failed: if no endpoint can answer, say so now
		// rather than after the timeout.
		if ue := s.probe(ctx, 0); ue.hopeless {
			err := ue
			s.connMu.Lock()
			s.down = err
			s.connMu.Unlock()
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var refused atomic.Pointer[UnreachableError]
	if !answered {
		// The client waits out the dial timeout even when every endpoint
		// refuses connections or has a certificate it cannot trust: when
		// no answer came soon, look, and stop at once if none can answer.
		// The probe ends with the call (cctx).
		probe := time.AfterFunc(refusedProbeDelay, func() {
			if ue := s.probe(cctx, 0); ue.hopeless {
				refused.Store(ue)
				cancel()
			}
		})
		defer probe.Stop()
	}
	err = fn(cctx, cli)
	if ue := refused.Load(); err != nil && ue != nil {
		s.connMu.Lock()
		s.down = ue
		s.connMu.Unlock()
		return ue
	}
	if err == nil {
		s.connMu.Lock()
		s.answered = true
		s.connMu.Unlock()
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err = s.explain(err)
	var ue *UnreachableError
	if errors.As(err, &ue) {
		s.connMu.Lock()
		s.down = err
		s.connMu.Unlock()
	}
	return err
}

// UnreachableError is etcd not answering in time, or not at all: nothing
// listens at the endpoints, or their TLS certificates cannot be trusted.
type UnreachableError struct {
	Where   string
	Timeout time.Duration // 0: no endpoint could answer, so none was waited for
	Causes  []string      // per endpoint: what dialling it said
	// Untrusted is set when an endpoint's TLS certificate could not be
	// verified: then the endpoints are right and the tls block is not.
	Untrusted bool

	hopeless bool // every endpoint refused connections or is untrusted
}

func (e *UnreachableError) Error() string {
	msg := fmt.Sprintf("etcd did not answer within %s (%s)", e.Timeout, e.Where)
	switch {
	case e.Untrusted:
		msg = fmt.Sprintf("etcd's TLS certificate could not be verified (%s)", e.Where)
	case e.Timeout == 0:
		msg = fmt.Sprintf("etcd cannot be reached (%s)", e.Where)
	}
	if len(e.Causes) > 0 {
		msg += ": " + strings.Join(e.Causes, "; ")
	}
	if e.Untrusted {
		return msg
	}
	return msg + "; check that etcd runs there and is reachable from this machine, or fix endpoints in the backend \"etcd\" block"
}

// AuthError is etcd refusing the credentials, or the user's permissions.
type AuthError struct {
	Where string
	User  string
	Err   error
}

func (e *AuthError) Error() string {
	if errors.Is(e.Err, rpctypes.ErrPermissionDenied) {
		return fmt.Sprintf("etcd user %q may not read and write the prefix (%s): %v; grant its role readwrite on the prefix", e.User, e.Where, e.Err)
	}
	if e.User == "" {
		return fmt.Sprintf("etcd requires a user name and password (%s): %v; set LLORCH_ETCD_USERNAME and LLORCH_ETCD_PASSWORD", e.Where, e.Err)
	}
	return fmt.Sprintf("etcd refused user %q and its password (from LLORCH_ETCD_USERNAME and LLORCH_ETCD_PASSWORD; %s): %v; set them to a user that etcd knows and its password", e.User, e.Where, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// explain turns a client error into one that says what is wrong.
func (s *Store) explain(err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrPermissionDenied),
		errors.Is(err, rpctypes.ErrUserEmpty), status.Code(err) == codes.Unauthenticated:
		return &AuthError{Where: s.where, User: s.opts.Username, Err: err}
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded, status.Code(err) == codes.Unavailable:
		timeout := s.opts.RequestTimeout
		s.connMu.Lock()
		if !s.answered {
			timeout = s.opts.DialTimeout
		}
		s.connMu.Unlock()
		return s.probe(context.Background(), timeout)
	}
	return fmt.Errorf("%s: %w", s.where, err)
}

// probe dials every endpoint and says what each said (the client only
// reports that its deadline passed), after waiting timeout for an answer;
// a timeout of 0 when no endpoint could answer.
func (s *Store) probe(ctx context.Context, timeout time.Duration) *UnreachableError {
	causes := make([]string, len(s.opts.Endpoints))
	verdicts := make([]dialVerdict, len(s.opts.Endpoints))
	var wg sync.WaitGroup
	for i, ep := range s.opts.Endpoints {
		wg.Go(func() {
			msg, v := s.dialOne(ctx, ep)
			causes[i], verdicts[i] = ep+": "+msg, v
		})
	}
	wg.Wait()
	e := &UnreachableError{Where: s.where, Timeout: timeout, Causes: causes,
		Untrusted: slices.Contains(verdicts, dialUntrusted), hopeless: !slices.Contains(verdicts, dialUnknown)}
	if e.hopeless {
		e.Timeout = 0 // not a slow etcd: none can answer
	}
	return e
}

// dialVerdict is what dialling an endpoint showed.
type dialVerdict int

const (
	dialUnknown   dialVerdict = iota // it may yet answer
	dialRefused                      // nothing listens
	dialUntrusted                    // its TLS certificate cannot be verified
)

// dialOne says what dialling ep gives.
func (s *Store) dialOne(ctx context.Context, ep string) (string, dialVerdict) {
	host := ep
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		host = u.Host
	}
	d := net.Dialer{Timeout: min(s.opts.DialTimeout, time.Second)}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return err.Error(), dialRefused
		}
		return err.Error(), dialUnknown
	}
	defer conn.Close()
	if s.tlsConfig == nil {
		return "it accepts connections but did not answer (is it etcd, and is it healthy? is it serving TLS where http:// was given?)", dialUnknown
	}
	cfg := s.tlsConfig.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(host)
	}
	tc := tls.Client(conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(min(s.opts.DialTimeout, time.Second)))
	if err := tc.HandshakeContext(ctx); err != nil {
		return s.handshakeFailure(err)
	}
	if s.opts.CertFile == "" {
		return "it accepts TLS connections but did not answer (is it healthy? does it require a client certificate, tls { cert_file key_file }?)", dialUnknown
	}
	return "it accepts TLS connections but did not answer (is it healthy? does it trust the CA of cert_file " + s.opts.CertFile + "?)", dialUnknown
}

// handshakeFailure says why a TLS handshake failed and what to change.
func (s *Store) handshakeFailure(err error) (string, dialVerdict) {
	var ve *tls.CertificateVerificationError
	if !errors.As(err, &ve) {
		return "TLS handshake failed: " + err.Error(), dialUnknown
	}
	by, fix := "the CA in ca_file "+s.opts.CAFile, "set ca_file to the CA that signed etcd's certificate"
	if s.opts.CAFile == "" {
		by, fix = "the system's trusted CAs (tls { ca_file } is not set)", "set tls { ca_file } to the CA that signed etcd's certificate"
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		fix = "use an endpoint address the certificate names, or a certificate that names this one"
	}
	return fmt.Sprintf("the server's certificate could not be verified with %s (%v); %s", by, ve.Err, fix), dialUntrusted
}
