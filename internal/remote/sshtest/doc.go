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
// Servers are started with Pdeathsig, so they die with the test binary
// even when it is killed. It is intended for use only in test code.
package sshtest
