package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Listening is one TCP address a process listens on.
type Listening struct {
	Host string // "127.0.0.1", "0.0.0.0", "::"
	Port int
}

// ListeningOn lists the TCP addresses process pid listens on, sorted by
// port.
func ListeningOn(pid int) ([]Listening, error) {
	ls, err := procNet{root: "/proc"}.listenersOf(pid)
	if err != nil {
		return nil, fmt.Errorf("listing the sockets of pid %d: %w", pid, err)
	}
	out := make([]Listening, 0, len(ls))
	for _, l := range ls {
		out = append(out, Listening{Host: l.ip.String(), Port: l.port})
	}
	slices.SortFunc(out, func(a, b Listening) int { return a.Port - b.Port })
	return slices.CompactFunc(out, func(a, b Listening) bool { return a.Port == b.Port }), nil
}

// ListenerOf returns the pid of the process listening on host:port, for
// `llorch import -url`.
func ListenerOf(host string, port int) (int, error) {
	listening, pid, _, err := procNet{root: "/proc"}.portListener(host, port)
	switch {
	case err != nil:
		return 0, fmt.Errorf("finding who listens on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	case !listening:
		return 0, fmt.Errorf("nothing listens on %s", net.JoinHostPort(host, strconv.Itoa(port)))
	case pid == 0:
		return 0, fmt.Errorf("a process of another user listens on %s; run llorch import as that user (or root)", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return pid, nil
}

// StartTicks returns the start time of process pid (/proc/PID/stat field
// 22), which Adoption records.
func StartTicks(pid int) (uint64, error) { return procStartTicks(pid) }

// VerifyAdoptable checks, before `llorch import` records anything, that
// the engine spec describes is process pid and serves what spec says: its
// health path answers ready, every listener on the port is pid's, and the
// protocol's identity probe names spec's model. It never signals pid.
func VerifyAdoptable(ctx context.Context, spec Spec, pid int) error {
	t := spec.target()
	t.PID = pid
	proto := t.Protocol
	// An engine still loading its model is waited for, as a start is.
	wait, every := spec.Health.StartTimeout, spec.Health.Interval
	if wait <= 0 {
		wait = 120 * time.Second
	}
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	p := NewHTTPProber()
	for {
		code, detail, err := p.Health(ctx, t)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("%s%s was still loading after %s (health.start_timeout); import it once it is ready", t.BaseURL, t.HealthPath, wait)
		case err != nil:
			return fmt.Errorf("asking %s%s whether it is ready: %w", t.BaseURL, t.HealthPath, err)
		case proto.ready(code):
		case proto.loading(code):
			select {
			case <-time.After(every):
				continue
			case <-ctx.Done():
				return fmt.Errorf("%s%s was still loading after %s (health.start_timeout; last answer %s); import it once it is ready", t.BaseURL, t.HealthPath, wait, detail)
			}
		default:
			return fmt.Errorf("%s%s answers %s, which this engine answers neither when ready nor while loading: is it the pool's engine, and health.path right?", t.BaseURL, t.HealthPath, detail)
		}
		break
	}
	if err := p.Confirm(ctx, t); err != nil {
		var foreign *ForeignServerError
		if !errors.As(err, &foreign) {
			return err
		}
		if model, ok := strings.CutPrefix(foreign.By, "a server with model "); ok {
			got, want, _ := strings.Cut(model, " instead of ")
			return fmt.Errorf("pid %d serves %s, not the pool's model %s; start it with the pool's model, or point the pool's model at the one it serves", pid, got, want)
		}
		return fmt.Errorf("port %d on %s is held by another process (%s), not only by pid %d; import the process that holds it", spec.Port, spec.Host, foreign.By, pid)
	}
	return nil
}

// SystemdUnit names the systemd service process pid runs in ("" when
// none): after an import, systemd must no longer restart it, or a stop by
// llorch would bring the hand-made engine back beside llorch's.
func SystemdUnit(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		_, path, _ := strings.Cut(line, "::")
		for part := range strings.SplitSeq(path, "/") {
			// user@UID.service is the user's own manager, which holds
			// every login session's processes.
			if strings.HasSuffix(part, ".service") && !strings.HasPrefix(part, "user@") {
				return part
			}
		}
	}
	return ""
}
