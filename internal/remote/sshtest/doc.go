// Package sshtest runs real OpenSSH servers for tests (Debian's
// openssh-server: apt-get install openssh-server; .ci/run installs it).
// Each Server is /usr/sbin/sshd -D -e with a config, a generated ed25519
// host key, one authorized client key and a known_hosts file for the
// client, all in a directory of its own; it logs in the user running the
// tests, with public keys only (no PAM, no passwords, StrictModes off, so
// the temporary directory's permissions do not matter).
//
// Start ties a server to a test and stops it at the test's end; Run is for
// a server shared by a test binary (TestMain), which the caller stops.
// NewNetwork makes machines on a private network: each a network namespace
// (ip netns, from iproute2) with an address of its own in 10.213.X.0/24
// and its own sshd on port 22, joined by veth pairs to one bridge that the
// test reaches them through; it is removed at the test's end, and the
// leftovers of a killed test binary are removed by the next one. It needs
// root and skips the test, saying why, without it.
// Servers are started with Pdeathsig, so they die with the test binary
// even when it is killed. It is intended for use only in test code.
package sshtest
