package main

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	scriptCmds["waitfollowing"] = cmdWaitFollowing
}

// waitfollowing VAR WORD...: wait until a process whose command line holds
// every WORD watches a file with inotify (logs -f is following: its Ctrl-C
// handler was installed before), and set $VAR to its pid.
func cmdWaitFollowing(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitfollowing VAR WORD...")
	}
	deadline := time.Now().Add(30 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if pid := watchingWithInotify(args[1:]); pid > 0 {
			ts.Setenv(args[0], strconv.Itoa(pid))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no process %q watched a file within 30s", args[1:])
		}
		time.Sleep(delay)
	}
}

func watchingWithInotify(words []string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if !slices.ContainsFunc(words, func(w string) bool { return !slices.Contains(argv, w) }) {
			fds, _ := filepath.Glob(filepath.Join(dir, "fd", "*"))
			for _, fd := range fds {
				if target, err := os.Readlink(fd); err == nil && target == "anon_inode:inotify" {
					pid, _ := strconv.Atoi(filepath.Base(dir))
					return pid
				}
			}
		}
	}
	return 0
}
