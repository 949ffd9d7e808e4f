package main

import (
	"fmt"
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
	pollUntil(ts, 30*time.Second, func() bool {
		pid := watchingWithInotify(args[1:])
		if pid > 0 {
			ts.Setenv(args[0], strconv.Itoa(pid))
		}
		return pid > 0
	}, func() string { return fmt.Sprintf("no process %q watched a file", args[1:]) })
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
