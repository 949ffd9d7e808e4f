package supervisor

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The supervisor against both llama-server builds' socket behaviour
// (ENGINE-NOTES), as the fake engine copies it (FAKE_BUILD).
var engineBuilds = []string{"4748", "10573"}

func TestKilledEngineComesBackOnItsFixedPort(t *testing.T) {
	for _, build := range engineBuilds {
		t.Run("build="+build, func(t *testing.T) {
			spec := fakeSpec(t, map[string]string{"FAKE_BUILD": build})
			r := startRun(t, spec)
			first, _ := r.waitFor(t, "ready", isState(Ready))
			for i := range 3 {
				// A connection the engine closed (its idle keep-alive
				// timeout, "Connection: close"): the kill leaves TIME-WAIT
				// on the engine's port, which a plain bind cannot take.
				closedByServer(t, spec.Port)
				if !timeWaitOnPort(t, spec.Port) {
					t.Fatal("no TIME-WAIT socket on the engine's port: the test would show nothing")
				}
				if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				next, seen := r.waitFor(t, "ready again", func(st Status) bool { return st.State == Ready || st.State == Failed })
				if next.State != Ready || next.Restarts != i+1 {
					t.Fatalf("after kill -9 number %d: %s restarts=%d, want ready again; statuses:\n%s", i+1, next.State, next.Restarts, describe(seen))
				}
				if next.PID == first.PID || next.Port != spec.Port {
					t.Fatalf("after kill -9: pid %d port %d, want a new engine on %d", next.PID, next.Port, spec.Port)
				}
				first = next
			}
		})
	}
}

func TestDrainedEngineStartsAgainOnItsFixedPort(t *testing.T) {
	for _, build := range engineBuilds {
		t.Run("build="+build, func(t *testing.T) {
			spec := fakeSpec(t, map[string]string{"FAKE_BUILD": build})
			r := startRun(t, spec)
			r.waitFor(t, "ready", isState(Ready))
			closedByServer(t, spec.Port)
			if _, err := r.client.DrainWithin(waitCtx(t), 0); err != nil {
				t.Fatal(err)
			}
			r.waitFor(t, "stopped", isState(Stopped))
			r.cancel()
			<-r.done
			r.done <- nil

			// What `llorch apply` does next: a new supervisor for the
			// replica, on the same port.
			spec.RunDir = runDir(t)
			again := startRun(t, spec)
			st, seen := again.waitFor(t, "ready or failed", func(st Status) bool { return st.State == Ready || st.State == Failed })
			if st.State != Ready {
				t.Fatalf("the replica did not start again on port %d: %s; statuses:\n%s", spec.Port, st.LastError, describe(seen))
			}
		})
	}
}

// closedByServer makes one request that the engine answers and then closes
// ("Connection: close"), so the TIME-WAIT socket is on its side, and waits
// for the close.
func closedByServer(t *testing.T, port int) {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("waiting for the engine to close: %v", err)
	}
}

// timeWaitOnPort reports a TIME-WAIT socket whose local port is port.
func timeWaitOnPort(t *testing.T, port int) bool {
	t.Helper()
	want := ":" + strings.ToUpper(strconv.FormatInt(int64(port), 16))
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "06" { // TCP_TIME_WAIT
				return true
			}
		}
	}
	return false
}

// The prober must neither keep connections to the engine alive nor leave
// TIME-WAIT sockets on the engine's port: either would make a build 4748
// engine stall its answers or block its restart (ENGINE-NOTES).
func TestProbesCloseTheirConnectionsFromTheProberSide(t *testing.T) {
	for _, build := range engineBuilds {
		t.Run("build="+build, func(t *testing.T) {
			spec := fakeSpec(t, map[string]string{"FAKE_BUILD": build})
			spec.Args = append(spec.Args, "--slots")
			// The supervisor's own liveness probe must not be in flight
			// when the test counts connections.
			spec.Health.LiveInterval = time.Hour
			r := startRun(t, spec)
			st, _ := r.waitFor(t, "ready", isState(Ready))
			target := Target{
				BaseURL: "http://127.0.0.1:" + strconv.Itoa(spec.Port), Host: "127.0.0.1", Port: spec.Port,
				PID: st.PID, HealthPath: "/health", Protocol: LegacyProtocol(spec.ModelPath),
			}
			p := NewHTTPProber()
			for range 5 {
				if code, _, err := p.Health(waitCtx(t), target); err != nil || code != 200 {
					t.Fatalf("Health = %d, %v", code, err)
				}
				if err := p.Confirm(waitCtx(t), target); err != nil {
					t.Fatalf("Confirm: %v", err)
				}
				if _, err := p.InFlight(waitCtx(t), target); err != nil {
					t.Fatalf("InFlight: %v", err)
				}
			}
			if timeWaitOnPort(t, spec.Port) {
				t.Error("probes left a TIME-WAIT socket on the engine's port: the engine closed first")
			}
			if n := establishedTo(t, spec.Port); n > 0 {
				t.Errorf("%d connections to the engine are still open after the probes answered", n)
			}
		})
	}
}

// establishedTo counts ESTABLISHED sockets of this machine whose remote
// port is port.
func establishedTo(t *testing.T, port int) int {
	t.Helper()
	want := ":" + strings.ToUpper(strconv.FormatInt(int64(port), 16))
	n := 0
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[2], want) && f[3] == "01" { // TCP_ESTABLISHED
				n++
			}
		}
	}
	return n
}
