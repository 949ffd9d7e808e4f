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
// handshake (40 ms to a loopback sshd), not one per question (3 ms each).
// A cancelled command is killed on the machine (SIGTERM, then SIGKILL, to
// its process group); a machine that stops answering does not hang the
// caller. EnsureFile keeps the sha256 of a file it placed beside it
// (.NAME.sha256) so that learning it is current costs no hashing. Start
// runs a command with its stdin and stdout connected, for a conversation
// (the llorch agent) instead of one question and answer.
//
// The remote side is assumed to be a POSIX login shell with GNU coreutils
// (sha256sum, stat -c, mv -T): llorch's machines run Linux.
package remote
