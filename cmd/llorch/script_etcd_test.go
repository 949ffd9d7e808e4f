package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/llorch/llorch/internal/etcdtest"
	"github.com/llorch/llorch/state"
)

func init() {
	scriptCmds["etcd"] = cmdEtcd
}

// etcdServers are the scripts' etcd servers, one per script at most.
var etcdServers = struct {
	sync.Mutex
	m map[*testscript.TestScript]*etcdtest.Server
}{m: map[*testscript.TestScript]*etcdtest.Server{}}

func scriptEtcd(ts *testscript.TestScript) *etcdtest.Server {
	etcdServers.Lock()
	defer etcdServers.Unlock()
	s := etcdServers.m[ts]
	if s == nil {
		ts.Fatalf("no etcd: run \"etcd start\" first")
	}
	return s
}

const etcdUsage = "usage: etcd start [-tls CERTDIR]|stop|kill|restart|certs DIR|auth ROOT_PASSWORD|lockpid|lockid PREFIX VAR"

// etcd start [-tls CERTDIR]|stop|kill|restart|certs DIR|auth ROOT_PASSWORD|lockpid|lockid PREFIX VAR:
// run a real etcd for the script (data in $WORK/etcd, free ports,
// $ETCD_ENDPOINT set, stopped when the script ends), serving TLS with
// CERTDIR's server certificate; stop it (SIGTERM), kill it (SIGKILL),
// start it again on the same ports and data; write a CA and certificates
// signed by it into DIR (etcdtest.WriteCerts); turn etcd's authentication
// on, with one user, root; or set $VAR to the pid or the ID recorded in
// the lock under PREFIX, once it is taken.
func cmdEtcd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf(etcdUsage)
	}
	switch args[0] {
	case "start":
		var opts etcdtest.Options
		switch {
		case len(args) == 3 && args[1] == "-tls":
			dir := ts.MkAbs(args[2])
			opts.CertFile, opts.KeyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
		case len(args) != 1:
			ts.Fatalf(etcdUsage)
		}
		s, err := etcdtest.Run(ts.MkAbs("."), opts)
		ts.Check(err)
		etcdServers.Lock()
		etcdServers.m[ts] = s
		etcdServers.Unlock()
		ts.Defer(func() {
			_ = s.Stop()
			etcdServers.Lock()
			delete(etcdServers.m, ts)
			etcdServers.Unlock()
		})
		ts.Setenv("ETCD_ENDPOINT", s.Endpoint)
	case "stop":
		ts.Check(scriptEtcd(ts).Stop())
	case "kill":
		ts.Check(scriptEtcd(ts).Kill())
	case "restart":
		ts.Check(scriptEtcd(ts).Restart())
	case "certs":
		if len(args) != 2 {
			ts.Fatalf(etcdUsage)
		}
		_, err := etcdtest.WriteCerts(ts.MkAbs(args[1]))
		ts.Check(err)
	case "auth":
		if len(args) != 2 {
			ts.Fatalf(etcdUsage)
		}
		ts.Check(etcdEnableAuth(scriptEtcd(ts).Endpoint, args[1]))
	case "lockpid", "lockid":
		if len(args) != 3 {
			ts.Fatalf(etcdUsage)
		}
		in := etcdLockInfo(ts, args[1])
		if args[0] == "lockid" {
			ts.Setenv(args[2], in.ID)
		} else {
			ts.Setenv(args[2], strconv.Itoa(in.PID))
		}
	default:
		ts.Fatalf("unknown etcd subcommand %q", args[0])
	}
}

// etcdLockInfo waits for the lock under prefix to be taken and returns its
// holder's info: a watch, so no poll.
func etcdLockInfo(ts *testscript.TestScript, prefix string) state.LockInfo {
	s := scriptEtcd(ts)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second})
	ts.Check(err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := prefix + "lock"
	resp, err := cli.Get(ctx, key)
	ts.Check(err)
	value := func(v []byte) state.LockInfo {
		var in state.LockInfo
		ts.Check(json.Unmarshal(v, &in))
		return in
	}
	if len(resp.Kvs) > 0 {
		return value(resp.Kvs[0].Value)
	}
	for w := range cli.Watch(ctx, key, clientv3.WithRev(resp.Header.Revision+1), clientv3.WithFilterDelete()) {
		ts.Check(w.Err())
		for _, ev := range w.Events {
			return value(ev.Kv.Value)
		}
	}
	ts.Fatalf("the lock at %s was not taken within 30s", filepath.Clean(key))
	return state.LockInfo{}
}

// etcdEnableAuth turns on etcd's authentication, as etcdctl user add root
// and etcdctl auth enable do.
func etcdEnableAuth(endpoint, rootPassword string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.RoleAdd(ctx, "root"); err != nil {
		return err
	}
	if _, err := cli.UserAdd(ctx, "root", rootPassword); err != nil {
		return err
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		return err
	}
	_, err = cli.AuthEnable(ctx)
	return err
}
