package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/tail"
)

func cmdStatus(m *meta, args []string) int {
	fs := flagSet("status")
	var v viewFlags
	v.add(fs, true)
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(v)
	_, st, ok := m.stateFromConfig()
	if !ok {
		return 1
	}
	l, err := m.launcher()
	if err != nil {
		m.fail("Cannot reach supervisors", err)
		return 1
	}
	rows := apply.Statuses(m.ctx, l, m.fs, st, time.Now())
	rows = append(rows, apply.UnknownStatuses(m.ctx, m.fs, filepath.Join(m.dirsOf(m.settings).State, "run"), st)...)
	if v.json {
		if rows == nil {
			rows = []apply.ReplicaStatus{}
		}
		return m.printJSON(map[string]any{"format_version": "1.0", "replicas": rows})
	}
	if len(rows) == 0 {
		fmt.Fprintln(m.stdout, "No pools in the state. Run \"llorch apply\" to start some.")
		return 0
	}
	tw := tabwriter.NewWriter(m.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSTATE\tPID\tPORT\tUPTIME\tRESTARTS\tLAST ERROR")
	for _, r := range rows {
		pid := "-"
		if r.PID > 0 {
			pid = fmt.Sprint(r.PID)
		}
		uptime := r.Uptime
		if uptime == "" {
			uptime = "-"
		}
		addr := r.Addr
		if r.NotInState {
			addr += " (not in the state)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", addr, r.State, pid, r.Port, uptime, r.Restarts, oneLine(r.LastError, 60))
	}
	_ = tw.Flush()
	return 0
}

// oneLine shortens a possibly multi-line error for a table cell.
func oneLine(s string, max int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if r := []rune(s); len(r) > max { // runes: an address may hold non-ASCII keys
		s = string(r[:max-1]) + "…"
	}
	return s
}

func cmdLogs(m *meta, args []string) int {
	fs := flagSet("logs")
	follow := fs.Bool("f", false, "follow the log as it grows (until Ctrl-C)")
	n := fs.Int("n", 50, "number of lines to print from the end (-1 for all)")
	var v viewFlags
	v.add(fs, false)
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(v)
	if fs.NArg() != 1 {
		m.errorf("Missing replica address", "llorch logs takes one replica address, like pool.chat/r0. Run \"llorch state list\" to see them.")
		return 1
	}
	a, ok := m.argAddr("logs", fs.Arg(0), true)
	if !ok {
		return 1
	}
	_, st, ok := m.stateFromConfig()
	if !ok {
		return 1
	}
	addr, id := a.String(), a.Replica
	p := st.Pools[a.PoolAddr()]
	if p == nil || p.Replica(id) == nil {
		m.errorf("No such replica in the state", "%s is not in the state. Run \"llorch state list\" to see the replicas.", addr)
		return 1
	}
	r := p.Replica(id)
	if r.RunDir == "" {
		m.errorf("No log for this replica", "%s is not running (%s), so it has no log. Run \"llorch apply\" to start it.", addr, r.Status)
		return 1
	}
	path := filepath.Join(r.RunDir, "engine.log")
	if err := tail.Last(m.stdout, path, *n); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			m.errorf("No log for this replica", "%s has not written %s yet.", addr, path)
		} else {
			m.fail("Cannot read the log", err)
		}
		return 1
	}
	if *follow {
		if err := tail.Follow(m.ctx, m.stdout, path); err != nil {
			m.fail("Cannot follow the log", err)
			return 1
		}
	}
	return 0
}

// drainProgressEvery is how often `llorch drain` says how a drain that
// still waits is doing.
const drainProgressEvery = 2 * time.Second

func inFlightPhrase(n int) string {
	switch n {
	case supervisor.InFlightUnknown:
		return "requests in flight unknown (the engine reports no counts)"
	case 1:
		return "1 request in flight"
	}
	return fmt.Sprintf("%d requests in flight", n)
}

func cmdDrain(m *meta, args []string) int {
	fs := flagSet("drain")
	var lf lockFlags
	lf.add(fs)
	deadline := fs.Duration("deadline", 0, "wait at most this long for in-flight requests (default: the pool's drain.deadline)")
	var v viewFlags
	v.add(fs, false)
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(v)
	if fs.NArg() != 1 {
		m.errorf("Missing address", "llorch drain takes one pool or replica address, like pool.chat or pool.chat/r0.")
		return 1
	}
	if _, ok := m.argAddr("drain", fs.Arg(0), false); !ok {
		return 1
	}
	s, st, unlock, ok := m.lockedState(lf, "drain")
	if !ok {
		return 1
	}
	defer unlock()
	if !m.checkPaths(st, m.settings) {
		return 1
	}
	l, err := m.launcher()
	if err != nil {
		m.fail("Cannot reach supervisors", err)
		return 1
	}
	if *deadline < 0 {
		m.errorf("Invalid -deadline", "-deadline must be a positive duration, like 30s (got %s).", *deadline)
		return 1
	}
	var out sync.Mutex
	results, err := apply.Drain(m.ctx, l, m.fs, st, fs.Arg(0), apply.DrainOptions{
		Deadline: *deadline, Now: time.Now, ProgressEvery: drainProgressEvery,
		Progress: func(addr string, st supervisor.Status, elapsed time.Duration) {
			out.Lock()
			defer out.Unlock()
			fmt.Fprintf(m.stdout, "%s: Still draining... [%s elapsed, %s, %s to deadline]\n",
				addr, elapsed.Round(time.Second), inFlightPhrase(st.InFlight), max(time.Until(st.DrainEndsAt), 0).Round(time.Second))
		},
	})
	if err != nil {
		m.fail("Cannot drain", err)
		return 1
	}
	code := 0
	for _, r := range results {
		switch {
		case r.Err != nil:
			m.errorf("Drain failed", "%s: %s", r.Addr, r.Err)
			code = 1
		case r.CutOff:
			fmt.Fprintf(m.stdout, "%s: Stopped at the drain deadline (%s) with %s: they were cut off. A longer -deadline (or drain.deadline) lets them finish.\n",
				r.Addr, r.Deadline, inFlightPhrase(r.InFlight))
		default:
			fmt.Fprintf(m.stdout, "%s: Drained and stopped.\n", r.Addr)
		}
	}
	if err := s.Write(m.ctx, st); err != nil {
		m.fail("Failed to save the state", err)
		return 1
	}
	if code == 0 {
		fmt.Fprintln(m.stdout, "\nThe next \"llorch plan\" shows the drained replicas as needing a start.")
	}
	return code
}
