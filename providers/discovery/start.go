package discovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/plugin"
)

// launchSpec says how to run one provider's plugin.
type launchSpec struct {
	name    string
	path    string   // the executable
	args    []string // after argv[0]; for built-ins, the self-exec arguments
	builtin bool
	// sha256 is the hex digest go-plugin checks just before exec; "" checks
	// nothing (built-ins, and plugins when no lock file is in use).
	sha256 string
	// lockName names the file sha256 came from, for messages.
	lockName string
}

// display names the process in messages: the plugin's path, or for a
// built-in the llorch command line that serves it.
func (s launchSpec) display() string {
	if s.builtin {
		return strings.Join(append([]string{s.path}, s.args...), " ")
	}
	return s.path
}

// start resolves name to a plugin, checks it against the lock file, and
// launches it.
func (r *Resolver) start(ctx context.Context, name string, onClose func()) (*pluginProvider, error) {
	if args, ok := r.opts.Builtins[name]; ok {
		return r.launch(ctx, launchSpec{name: name, path: r.opts.SelfExe, args: args, builtin: true}, onClose)
	}
	path, err := r.find(name)
	if err != nil {
		return nil, err
	}
	spec := launchSpec{name: name, path: path}
	if lf := r.lockFile(); lf != nil {
		spec.lockName = filepath.Base(r.opts.LockFile)
		lp, err := checkLocked(lf, spec.lockName, name, path)
		if err != nil {
			return nil, err
		}
		// go-plugin hashes the file just before exec and refuses a
		// mismatch, which startError explains with both digests.
		spec.sha256 = lp.SHA256
	}
	return r.launch(ctx, spec, onClose)
}

// checkLocked returns the lock file's entry for a plugin, or the error that
// refuses a plugin the lock file does not vouch for.
func checkLocked(lf *LockFile, lockName, name, path string) (LockedProvider, error) {
	lp, ok := lf.Lookup(name)
	switch {
	case !ok:
		return lp, &kindError{kind: ErrNotLocked, msg: fmt.Sprintf(
			"provider %q is not in %s; run `llorch init`", name, lockName)}
	case lp.Builtin:
		return lp, &kindError{kind: ErrChecksum, msg: fmt.Sprintf(
			"provider %q is recorded in %s as built in, but llorch now finds it as the plugin %s; run `llorch init -upgrade` if you trust that plugin",
			name, lockName, path)}
	}
	return lp, nil
}

func checksumMismatch(name, path, got, lockName, want string) error {
	return &kindError{kind: ErrChecksum, msg: fmt.Sprintf(
		"provider %q plugin %s has sha256 %s, but %s records %s; run `llorch init -upgrade` if you trust the new plugin",
		name, path, got, lockName, want)}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading plugin: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading plugin %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// launch starts the plugin process, completes the handshake and dispenses
// the provider. If ctx ends first, the process is killed.
func (r *Resolver) launch(ctx context.Context, spec launchSpec, onClose func()) (*pluginProvider, error) {
	// The process's own context is a backstop that kills it however the
	// start ends; go-plugin's Kill stops it gracefully first.
	procCtx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(procCtx, spec.path, spec.args...)
	if spec.builtin {
		// llorch dispatches on argv[0]; the executable itself may be a copy
		// under another name (testscript installs one per command).
		cmd.Args[0] = "llorch"
	}
	setProcAttr(cmd)

	pp := &pluginProvider{spec: spec, cancel: cancel, tail: &tail{}, onClose: onClose}
	tlsConfig, tlsEnv, err := plugin.ClientTLS()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("starting provider %q: %w", spec.name, err)
	}
	// go-plugin adds the host's environment and its handshake variables;
	// these go last so that no inherited value can stand in for them.
	cmd.Env = append(os.Environ(), tlsEnv...)
	var secure *goplugin.SecureConfig
	if spec.sha256 != "" {
		sum, err := hex.DecodeString(spec.sha256)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("provider %q: bad checksum %q: %w", spec.name, spec.sha256, err)
		}
		// go-plugin hashes the executable just before exec (Terraform's
		// SecureConfig), leaving the smallest window for a swap.
		secure = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	logger := r.logger.Named("provider").Named(spec.name)
	userStderr := r.opts.Stderr
	if userStderr == nil {
		userStderr = io.Discard
	}
	pp.client = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: plugin.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{plugin.ProtocolVersion: {
			plugin.PluginName: &plugin.GRPCProviderPlugin{Name: spec.name, Diagnose: pp.diagnose},
		}},
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: plugin.AllowedProtocols,
		// Mutual TLS with keys made for this process, exchanged as
		// AutoMTLS does, only cheaper: see plugin.ClientTLS.
		TLSConfig:    tlsConfig,
		SkipHostEnv:  true,
		Managed:      true,
		StartTimeout: r.opts.StartTimeout,
		Logger:       logger,
		// The raw stderr carries the plugin's JSON log lines and any crash
		// report: into the tail for error messages (go-plugin also logs it).
		Stderr: pp.tail,
		// What the plugin prints on its (redirected) stdout and stderr.
		SyncStdout: logger.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		SyncStderr: io.MultiWriter(pp.tail, userStderr),
	})

	done := make(chan error, 1)
	go func() {
		_, err := pp.client.Start()
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		cancel() // kill the process so that Start returns now
		<-done
		pp.kill()
		return nil, fmt.Errorf("starting provider %q: %w", spec.name, ctx.Err())
	case <-r.done:
		cancel()
		<-done
		pp.kill()
		return nil, fmt.Errorf("starting provider %q: %w", spec.name, ErrClosed)
	}
	if err != nil {
		// Kill waits until the plugin's stderr has been read to the end, so
		// the tail is complete before the message is built.
		pp.kill()
		return nil, r.startError(spec, err, pp.tail)
	}

	rpc, err := pp.client.Client()
	if err != nil {
		pp.kill()
		return nil, fmt.Errorf("connecting to provider %q plugin %s: %w", spec.name, spec.display(), err)
	}
	raw, err := rpc.Dispense(plugin.PluginName)
	if err != nil {
		pp.kill()
		return nil, fmt.Errorf("provider %q plugin %s: %w", spec.name, spec.display(), err)
	}
	gc, ok := raw.(*plugin.GRPCClient)
	if !ok {
		pp.kill()
		return nil, fmt.Errorf("provider %q plugin %s: dispensed %T, not a provider", spec.name, spec.display(), raw)
	}
	pp.GRPCClient = gc
	logger.Debug("provider plugin started", "path", spec.display(), "pid", pp.client.ID())
	return pp, nil
}

var pluginVersionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`Plugin version: (\d+)`) })

// startError explains why a plugin did not start, from go-plugin's error
// and the plugin's last stderr lines.
func (r *Resolver) startError(spec launchSpec, err error, t *tail) error {
	msg := err.Error()
	who := fmt.Sprintf("provider %q plugin %s", spec.name, spec.display())
	var e *kindError
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		got, herr := fileSHA256(spec.path)
		if herr != nil {
			got = "unknown (" + herr.Error() + ")"
		}
		return checksumMismatch(spec.name, spec.path, got, spec.lockName, spec.sha256)
	case strings.HasPrefix(msg, "incompatible API version with plugin"):
		theirs := "another protocol version"
		if m := pluginVersionRE().FindStringSubmatch(msg); m != nil {
			theirs = "protocol version " + m[1]
		}
		e = &kindError{kind: ErrProtocolVersion, msg: fmt.Sprintf(
			"%s speaks llorch plugin %s, but this llorch speaks protocol version %d; install a build of the plugin made for protocol version %d",
			who, theirs, plugin.ProtocolVersion, plugin.ProtocolVersion)}
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		e = &kindError{kind: ErrNotPlugin, msg: fmt.Sprintf(
			"%s did not complete the plugin handshake within %s; it may not be a llorch provider plugin, or it is stuck",
			who, r.opts.StartTimeout)}
	default:
		e = &kindError{kind: ErrNotPlugin, msg: fmt.Sprintf(
			"%s is not a llorch provider plugin (it did not complete the plugin handshake): %s", who, handshakeFailure(msg))}
	}
	if lines := t.Lines(); len(lines) > 0 {
		e.msg += "; the last lines it wrote to standard error:\n" + indent(lines)
	}
	return e
}

// handshakeFailure says in a few words what a process did instead of the
// handshake, from go-plugin's (long, multi-line) error.
func handshakeFailure(msg string) string {
	first, _, _ := strings.Cut(msg, "\n")
	switch {
	case strings.HasPrefix(first, "Unrecognized remote plugin message: "):
		line := strings.TrimPrefix(first, "Unrecognized remote plugin message: ")
		if strings.TrimSpace(line) == "" {
			return "it exited before the handshake"
		}
		return fmt.Sprintf("it printed %q instead", line)
	case strings.HasPrefix(first, "plugin exited before we could connect"):
		return "it exited before the handshake"
	case strings.HasPrefix(first, "unsupported plugin protocol"):
		return "it serves go-plugin's net/rpc protocol, and llorch plugins serve gRPC"
	default:
		return first
	}
}

// pluginProvider is a running plugin as a providers.Provider: the gRPC
// adapter, plus a Close that stops the process.
type pluginProvider struct {
	*plugin.GRPCClient

	spec    launchSpec
	client  *goplugin.Client
	cancel  context.CancelFunc
	tail    *tail
	onClose func()

	// killMu serializes kills: after a crash, every call that was in
	// flight reports it, and each makes sure the process is gone.
	killMu sync.Mutex
}

var _ providers.Provider = (*pluginProvider)(nil)

// Close stops the plugin process. The resolver forgets it, so the next
// Provider call for the same name starts a new one.
func (p *pluginProvider) Close() error {
	p.kill()
	p.onClose()
	return nil
}

// kill stops the process, gracefully when it still answers, and returns
// once it has exited and its output has been read.
func (p *pluginProvider) kill() {
	p.killMu.Lock()
	defer p.killMu.Unlock()
	p.client.Kill()
	p.cancel()
}

func (p *pluginProvider) exited() bool { return p.client.Exited() }

// diagnose runs when a call found the plugin's connection broken: usually
// the plugin crashed. It makes sure the process is gone, then reports the
// last words the plugin wrote to stderr.
func (p *pluginProvider) diagnose() string {
	p.kill()
	lines := p.tail.Lines()
	if len(lines) == 0 {
		return fmt.Sprintf("Its process (%s) has stopped without writing to standard error; set LLORCH_LOG=debug to see its log.",
			p.spec.display())
	}
	return fmt.Sprintf("Its process (%s) has stopped. The last lines it wrote to standard error:\n%s",
		p.spec.display(), indent(lines))
}
