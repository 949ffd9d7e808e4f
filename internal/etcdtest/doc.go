// Package etcdtest runs a real etcd server for tests: Debian's etcd-server
// (apt-get install etcd-server; .ci/run installs it), on free loopback
// ports, with its data in a directory the caller owns, as a single-node
// cluster that elects itself at once. Start ties the server to a test and
// stops it at the test's end; Run is for testscript, whose scripts stop,
// kill and restart it.
//
// The server is started with Pdeathsig, so it dies with the test binary
// even when that is killed.
package etcdtest
