package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	scriptCmds["waitcatch"] = cmdWaitCatch
}

// waitcatch VAR WORD...: wait until a process whose command line holds
// every WORD catches SIGINT (its signal handler is installed, so a
// Ctrl-C sent now reaches it), and set $VAR to its pid.
func cmdWaitCatch(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitcatch VAR WORD...")
	}
	deadline := time.Now().Add(30 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if pid := catchingSIGINT(args[1:]); pid > 0 {
			ts.Setenv(args[0], strconv.Itoa(pid))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no process %q caught SIGINT within 30s", args[1:])
		}
		time.Sleep(delay)
	}
}

func catchingSIGINT(words []string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if !containsAll(argv, words) {
			continue
		}
		status, err := os.ReadFile(filepath.Join(dir, "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if hex, ok := strings.CutPrefix(line, "SigCgt:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
				if err == nil && mask&(1<<(2-1)) != 0 { // SIGINT is 2
					pid, _ := strconv.Atoi(filepath.Base(dir))
					return pid
				}
			}
		}
	}
	return 0
}

func containsAll(argv, words []string) bool {
	for _, w := range words {
		found := false
		for _, a := range argv {
			if a == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
