// Package remote reaches the GPU machines a pool may be placed on: it dials
// a Machine over SSH (golang.org/x/crypto/ssh), runs commands there on the
// one connection, and keeps files there in step with local ones
// (EnsureFile), which is how llorch puts its own binary on a machine.
//
// Host keys are always verified against a known_hosts file; there is no
// option to skip it. Every failure to connect is a typed error
// (RefusedError, TimeoutError, AuthError, UnknownHostKeyError,
// HostKeyMismatchError, CredentialError, KnownHostsError, ConnectError)
// whose text names the machine and says what to do, so that a plan can
// print it as it stands.
//
// A Conn is one SSH connection: commands run on sessions multiplexed over
// it, so a refresh that asks a machine several things pays for one
// handshake, not one per question. The remote side is assumed to be a
// POSIX shell with coreutils (sha256sum, mktemp, mv): llorch's machines run
// Linux.
package remote
