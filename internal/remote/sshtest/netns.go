package sshtest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Network is machines on a private network: each a Linux network
// namespace with its own sshd on port 22, joined to the test's network
// namespace by a veth pair on one bridge, as GPU machines on a LAN are.
type Network struct {
	Subnet   string    // 10.213.X.0/24
	Gateway  string    // the bridge's address, the test's end: 10.213.X.1
	Machines []*Server // Machines[i] listens on 10.213.X.(10+i), port 22

	Bridge     string   // the bridge's name
	Namespaces []string // Namespaces[i] is Machines[i]'s
	links      []string // veth ends, in case one was made but not moved
}

// networkSeq tells apart the networks one test binary makes.
var networkSeq atomic.Int32

// NewNetwork makes n machines and removes them (servers, namespaces, veth
// pairs, bridge) when t ends, whether or not it failed. It skips t, with
// the reason, where namespaces cannot be made: not root, no ip command
// (apt-get install iproute2), or a kernel or container that refuses.
func NewNetwork(t testing.TB, n int) *Network {
	t.Helper()
	if n < 1 || n > 200 {
		t.Fatalf("NewNetwork(%d): between 1 and 200 machines", n)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: the machines are network namespaces, which only root can make (CI runs the tests as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: the machines are network namespaces, made with ip, which is not installed (apt-get install iproute2; .ci/run does)")
	}
	if _, err := Binary(); err != nil {
		t.Fatal(err)
	}
	// Names carry the test binary's pid, so that a network a killed test
	// binary left behind is recognised and removed (sweep), and fit the
	// 15 bytes of an interface name.
	tag := fmt.Sprintf("%x.%x", os.Getpid(), networkSeq.Add(1))
	nw := &Network{Bridge: "llb" + tag}
	t.Cleanup(func() { nw.remove(t) })
	sweep(t)

	subnet, err := freeSubnet()
	if err != nil {
		t.Fatal(err)
	}
	nw.Subnet, nw.Gateway = subnet+".0/24", subnet+".1"
	if out, err := ip("link", "add", nw.Bridge, "type", "bridge"); err != nil {
		t.Skipf("skipping: cannot make a bridge for the machines' network namespaces (%v: %s)", err, out)
	}
	mustIP(t, "addr", "add", nw.Gateway+"/24", "dev", nw.Bridge)
	mustIP(t, "link", "set", nw.Bridge, "up")
	for i := range n {
		ns := fmt.Sprintf("llorch-test-%s.%d", tag, i)
		if out, err := ip("netns", "add", ns); err != nil {
			t.Skipf("skipping: cannot make network namespaces (%v: %s)", err, out)
		}
		nw.Namespaces = append(nw.Namespaces, ns)
		host, peer := fmt.Sprintf("llv%s.%x", tag, i), fmt.Sprintf("llp%s.%x", tag, i)
		nw.links = append(nw.links, host, peer)
		addr := fmt.Sprintf("%s.%d", subnet, 10+i)
		mustIP(t, "link", "add", host, "type", "veth", "peer", "name", peer)
		mustIP(t, "link", "set", host, "master", nw.Bridge)
		mustIP(t, "link", "set", host, "up")
		mustIP(t, "link", "set", peer, "netns", ns)
		mustIP(t, "-n", ns, "link", "set", peer, "name", "eth0")
		mustIP(t, "-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
		mustIP(t, "-n", ns, "link", "set", "eth0", "up")
		mustIP(t, "-n", ns, "link", "set", "lo", "up")
		s, err := start(t.TempDir(), addr, 22, []string{"ip", "netns", "exec", ns}, Options{})
		if err != nil {
			t.Fatalf("machine %d (%s in namespace %s): %v", i, addr, ns, err)
		}
		nw.Machines = append(nw.Machines, s)
	}
	return nw
}

// remove stops the servers and deletes what NewNetwork made; a
// namespace's deletion takes its end of the veth pair, and so the pair,
// with it.
func (nw *Network) remove(t testing.TB) {
	for _, s := range nw.Machines {
		_ = s.Stop()
		if t.Failed() {
			t.Logf("sshd log of %s:\n%s", s.Addr(), s.Log(40))
		}
	}
	for _, ns := range nw.Namespaces {
		if out, err := ip("netns", "del", ns); err != nil {
			t.Errorf("removing network namespace %s: %v: %s", ns, err, out)
		}
	}
	for _, l := range append(nw.links, nw.Bridge) {
		if out, err := ip("link", "del", l); err != nil && !strings.Contains(string(out), "Cannot find device") {
			t.Errorf("removing link %s: %v: %s", l, err, out)
		}
	}
}

// sweep removes the namespaces and bridges of test binaries that are no
// longer running (killed before their cleanup ran).
func sweep(t testing.TB) {
	dead := func(name, prefix string) bool {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			return false
		}
		pidHex, _, _ := strings.Cut(rest, ".")
		var pid int
		if _, err := fmt.Sscanf(pidHex, "%x", &pid); err != nil || pid == os.Getpid() {
			return false
		}
		_, err := os.Stat(filepath.Join("/proc", fmt.Sprint(pid)))
		return os.IsNotExist(err)
	}
	if out, err := ip("netns", "list"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && dead(f[0], "llorch-test-") {
				if out, err := ip("netns", "del", f[0]); err != nil {
					t.Logf("removing the stale network namespace %s: %v: %s", f[0], err, out)
				}
			}
		}
	}
	if out, err := ip("-o", "link", "show"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			// "7: llv1a2b.1.0@if6: <BROADCAST,...": the name is the second field.
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if dead(name, "llb") || dead(name, "llv") || dead(name, "llp") {
				if out, err := ip("link", "del", name); err != nil && !strings.Contains(string(out), "Cannot find device") {
					t.Logf("removing the stale link %s: %v: %s", name, err, out)
				}
			}
		}
	}
}

// freeSubnet picks 10.213.X (a /24 of a block few networks use) that no
// address or route of this machine is in.
func freeSubnet() (string, error) {
	addrs, err := ip("-o", "-4", "addr", "show")
	if err != nil {
		return "", fmt.Errorf("listing addresses: %v: %s", err, addrs)
	}
	routes, err := ip("-4", "route", "show", "table", "all")
	if err != nil {
		return "", fmt.Errorf("listing routes: %v: %s", err, routes)
	}
	used := string(addrs) + "\n" + string(routes)
	// A route to a wider prefix (10.0.0.0/8, 10.213.0.0/16) covers them all.
	for _, wide := range []string{" 10.0.0.0/8", " 10.213.0.0/16", "\n10.0.0.0/8", "\n10.213.0.0/16"} {
		if strings.Contains(used, wide) {
			return "", fmt.Errorf("10.213.0.0/16, where the test machines go, is in use here:\n%s", used)
		}
	}
	for range 50 {
		subnet := fmt.Sprintf("10.213.%d", rand.IntN(256))
		if !strings.Contains(used, subnet+".") {
			return subnet, nil
		}
	}
	return "", fmt.Errorf("no free /24 in 10.213.0.0/16 after 50 tries:\n%s", used)
}

func ip(args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return bytes.TrimSpace(out.Bytes()), err
}

func mustIP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := ip(args...); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
