package remote_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/remote"
	"github.com/llorch/llorch/internal/remote/sshtest"
)

// Machines on a private network, each in a network namespace of its own,
// are dialled by their addresses on the default port, each over its own
// connection.
func TestNetworkMachines(t *testing.T) {
	nw := sshtest.NewNetwork(t, 2)
	for i, s := range nw.Machines {
		m := machine(s, fmt.Sprintf("gpu%d", i+1))
		m.Port = 0 // 22
		c, err := remote.Dial(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		res, err := c.Run(t.Context(), "ip -o -4 addr show dev eth0", nil)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("gpu%d: ip addr = %+v, %v", i+1, res, err)
		}
		if want := " inet " + s.Host + "/24 "; !strings.Contains(string(res.Stdout), want) {
			t.Errorf("gpu%d's eth0 = %s, want it to have %s", i+1, res.Stdout, want)
		}
	}

	// Nothing listens on another port of a machine that is up.
	m := machine(nw.Machines[0], "gpu1")
	m.Port = 2222
	_, err := remote.Dial(t.Context(), m)
	var re *remote.RefusedError
	if want := fmt.Sprintf(`machine "gpu1": connecting to %s:2222: connection refused: nothing listens on port 2222 there; check that sshd runs on the machine and that 2222 is its SSH port`, nw.Machines[0].Host); err == nil || err.Error() != want || !errors.As(err, &re) {
		t.Errorf("Dial of port 2222 = %v, want %s", err, want)
	}
}

// The namespaces, links and servers go when the test ends, failed or not.
func TestNetworkIsRemoved(t *testing.T) {
	var nw *sshtest.Network
	t.Run("network", func(t *testing.T) { nw = sshtest.NewNetwork(t, 1) })
	if nw == nil || len(nw.Namespaces) == 0 {
		t.Skip("no network was made")
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err, string(out))
	}
	if strings.Contains(string(out), nw.Namespaces[0]) {
		t.Errorf("namespace %s is still there: %s", nw.Namespaces[0], out)
	}
	if out, err := exec.Command("ip", "link", "show", nw.Bridge).CombinedOutput(); err == nil {
		t.Errorf("bridge %s is still there: %s", nw.Bridge, out)
	}
	m := machine(nw.Machines[0], "gpu1")
	m.ConnectTimeout = time.Second // the default route may take the packets and drop them
	if _, err := remote.Dial(t.Context(), m); err == nil {
		t.Errorf("machine %s still answers", nw.Machines[0].Addr())
	}
}

// A network whose test binary was killed before its cleanup ran is
// removed by the next one.
func TestNetworkSweepsStaleNetworks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespaces need root")
	}
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("%x.0", pidMax+1) // a pid no process has
	ns, bridge := "llorch-test-"+tag+".0", "llb"+tag
	for _, args := range [][]string{{"netns", "add", ns}, {"link", "add", bridge, "type", "bridge"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("skipping: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", ns).Run()
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})
	sshtest.NewNetwork(t, 1)
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), ns) {
		t.Errorf("stale namespace %s is still there: %s", ns, out)
	}
	if out, err := exec.Command("ip", "link", "show", bridge).CombinedOutput(); err == nil {
		t.Errorf("stale bridge %s is still there: %s", bridge, out)
	}
}
