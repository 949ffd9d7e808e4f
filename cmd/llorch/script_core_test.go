package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/llorch/llorch/internal/version"
	"github.com/llorch/llorch/state"
)

// The commands the configuration, plan, state and lock scripts add to
// scriptCmds.
func init() {
	scriptCmds["lockinfo"] = cmdLockInfo
	scriptCmds["cmpscrub"] = cmdCmpScrub
	scriptCmds["versionenv"] = cmdVersionEnv
}

// versionenv: set $LLORCH_VERSION to this build's version, for goldens
// that name it.
func cmdVersionEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: versionenv")
	}
	ts.Setenv("LLORCH_VERSION", version.Version)
}

// lockinfo: set $LOCK_ID, $LOCK_PID, $LOCK_WHO, $LOCK_HOST, $LOCK_OP and
// $LOCK_VERSION
// from the holder's info in .llorch/state.lock, so a script can check that
// a lock error names the real holder.
func cmdLockInfo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: lockinfo")
	}
	data, err := os.ReadFile(ts.MkAbs(filepath.Join(".llorch", "state.lock")))
	ts.Check(err)
	var info state.LockInfo
	if err := json.Unmarshal(data, &info); err != nil {
		ts.Fatalf("the lock file holds no lock info (%v): %q", err, data)
	}
	ts.Setenv("LOCK_ID", info.ID)
	ts.Setenv("LOCK_PID", strconv.Itoa(info.PID))
	ts.Setenv("LOCK_WHO", info.Who)
	ts.Setenv("LOCK_HOST", info.Host)
	ts.Setenv("LOCK_OP", info.Operation)
	ts.Setenv("LOCK_VERSION", info.Version)
}

// Volatile parts of an output that cmpscrub replaces: timestamps and ages.
var scrubs = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?( UTC|Z)`), "TIME"},
	{regexp.MustCompile(`\((\d+h)?(\d+m)?\d+(\.\d+)?s ago\)`), "(AGE ago)"},
}

// cmpscrub FILE GOLDEN: like cmpenv (GOLDEN's $VARS are expanded), after
// replacing the timestamps in FILE (stdout, stderr or a file) with TIME and
// ages such as "(3s ago)" with "(AGE ago)".
func cmdCmpScrub(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cmpscrub FILE GOLDEN")
	}
	got := ts.ReadFile(args[0])
	for _, s := range scrubs {
		got = s.re.ReplaceAllString(got, s.with)
	}
	want := os.Expand(ts.ReadFile(args[1]), ts.Getenv)
	if got == want {
		return
	}
	ts.Logf("[diff -%s +%s]\n%s", args[0], args[1], lineDiff(got, want))
	ts.Fatalf("%s and %s differ", args[0], args[1])
}

// lineDiff lists the lines that differ, in order: enough to see a golden
// mismatch without a diff library.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out.WriteString("-" + x + "\n+" + y + "\n")
		}
	}
	return out.String()
}
