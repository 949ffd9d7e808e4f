package fakeengine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// knobs are the FAKE_* environment variables that make the fake misbehave on
// purpose. doc.go lists them for test authors.
type knobs struct {
	loadDelay      time.Duration
	hangLoad       bool
	crashOnStart   bool
	outOfMemory    bool
	crashAfter     time.Duration
	crashAfterSet  bool
	exitCode       int
	crashTimes     int // -1: the fault knobs apply to every start
	counterFile    string
	ignoreSigterm  bool
	unhealthyAfter time.Duration
	unhealthySet   bool
	requestDelay   time.Duration
	inflight       int
	versionOutput  string // "" = the build's own
	skipModelCheck bool
	pidFile        string
	readyStamp     bool
	cgroup         string // a memory cgroup directory to join at start
	growMiB        int    // once ready, allocate and touch this much memory
}

func parseKnobs(env func(string) string) (knobs, error) {
	k := knobs{
		loadDelay:     20 * time.Millisecond,
		exitCode:      1,
		crashTimes:    -1,
		counterFile:   env("FAKE_COUNTER_FILE"),
		versionOutput: env("FAKE_VERSION_OUTPUT"),
		pidFile:       env("FAKE_PID_FILE"),
		cgroup:        env("FAKE_CGROUP"),
	}
	durations := []struct {
		name string
		dst  *time.Duration
		set  *bool
	}{
		{"FAKE_LOAD_DELAY", &k.loadDelay, nil},
		{"FAKE_CRASH_AFTER", &k.crashAfter, &k.crashAfterSet},
		{"FAKE_UNHEALTHY_AFTER", &k.unhealthyAfter, &k.unhealthySet},
		{"FAKE_REQUEST_DELAY", &k.requestDelay, nil},
	}
	for _, d := range durations {
		v := env(d.name)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil {
			return k, fmt.Errorf("error: %s=%q is not a duration: want Go syntax such as 150ms or 2s", d.name, v)
		}
		if dur < 0 {
			return k, fmt.Errorf("error: %s=%q is negative", d.name, v)
		}
		*d.dst = dur
		if d.set != nil {
			*d.set = true
		}
	}
	bools := []struct {
		name string
		dst  *bool
	}{
		{"FAKE_HANG_LOAD", &k.hangLoad},
		{"FAKE_CRASH_ON_START", &k.crashOnStart},
		{"FAKE_OUT_OF_MEMORY", &k.outOfMemory},
		{"FAKE_IGNORE_SIGTERM", &k.ignoreSigterm},
		{"FAKE_SKIP_MODEL_CHECK", &k.skipModelCheck},
		{"FAKE_READY_STAMP", &k.readyStamp},
	}
	for _, b := range bools {
		v := env(b.name)
		if v == "" {
			continue
		}
		on, err := strconv.ParseBool(v)
		if err != nil {
			return k, fmt.Errorf("error: %s=%q is not a boolean: want 1 or 0", b.name, v)
		}
		*b.dst = on
	}
	ints := []struct {
		name     string
		dst      *int
		min, max int
	}{
		{"FAKE_EXIT_CODE", &k.exitCode, 0, 255},
		{"FAKE_CRASH_TIMES", &k.crashTimes, 0, 1 << 30},
		{"FAKE_INFLIGHT", &k.inflight, 0, 1 << 16},
		{"FAKE_GROW_MIB", &k.growMiB, 0, 1 << 20},
	}
	for _, n := range ints {
		v := env(n.name)
		if v == "" {
			continue
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < n.min || i > n.max {
			return k, fmt.Errorf("error: %s=%q is not a whole number from %d to %d", n.name, v, n.min, n.max)
		}
		*n.dst = i
	}
	if k.crashTimes >= 0 && k.counterFile == "" {
		return k, fmt.Errorf("error: FAKE_CRASH_TIMES=%d needs FAKE_COUNTER_FILE to count starts: set it to a file path", k.crashTimes)
	}
	return k, nil
}

// countStart adds one to the counter file and returns the new count; with
// no counter file it returns 0. The file is locked while it is updated, so
// starts racing each other still count one each.
func countStart(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("opening FAKE_COUNTER_FILE: %w", err)
	}
	defer f.Close()
	unlock, err := lockFile(f)
	if err != nil {
		return 0, fmt.Errorf("locking FAKE_COUNTER_FILE %s: %w", path, err)
	}
	defer unlock()
	buf := make([]byte, 32)
	nr, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("reading FAKE_COUNTER_FILE %s: %w", path, err)
	}
	n := 0
	if text := strings.TrimSpace(string(buf[:nr])); text != "" {
		if n, err = strconv.Atoi(text); err != nil {
			return 0, fmt.Errorf("FAKE_COUNTER_FILE %s holds %q, not a start count: remove it to start from zero", path, text)
		}
	}
	n++
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("writing FAKE_COUNTER_FILE %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(n)+"\n"), 0); err != nil {
		return 0, fmt.Errorf("writing FAKE_COUNTER_FILE %s: %w", path, err)
	}
	return n, nil
}
