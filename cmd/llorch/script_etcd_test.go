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

// etcd start|stop|kill|restart|lockpid PREFIX VAR: run a real etcd for
// the script (data in $WORK/etcd, free ports, $ETCD_ENDPOINT set, stopped
// when the script ends); stop it (SIGTERM), kill it (SIGKILL), start it
// again on the same ports and data; or set $VAR to the pid recorded in the
// lock under PREFIX.
func cmdEtcd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: etcd start|stop|kill|restart|lockpid PREFIX VAR")
	}
	switch args[0] {
	case "start":
		s, err := etcdtest.Run(ts.MkAbs("."), etcdtest.Options{})
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
	case "lockpid":
		if len(args) != 3 {
			ts.Fatalf("usage: etcd lockpid PREFIX VAR")
		}
		ts.Setenv(args[2], strconv.Itoa(etcdLockPID(ts, args[1])))
	default:
		ts.Fatalf("unknown etcd subcommand %q", args[0])
	}
}

// etcdLockPID waits for the lock under prefix to be taken and returns its
// holder's pid: a watch, so no poll.
func etcdLockPID(ts *testscript.TestScript, prefix string) int {
	s := scriptEtcd(ts)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second})
	ts.Check(err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := prefix + "lock"
	resp, err := cli.Get(ctx, key)
	ts.Check(err)
	value := func(v []byte) int {
		var in state.LockInfo
		ts.Check(json.Unmarshal(v, &in))
		return in.PID
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
	return 0
}
