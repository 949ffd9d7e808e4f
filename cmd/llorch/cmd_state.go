package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/state"
)

func cmdVersion(m *meta, args []string) int {
	fs := flagSet("version")
	var v viewFlags
	v.add(fs, true)
	if !m.parseFlags(fs, args) {
		return 1
	}
	if v.json {
		return m.printJSON(map[string]any{"llorch_version": versionString(), "platform": platform()})
	}
	fmt.Fprintf(m.stdout, "llorch v%s\non %s\n", versionString(), platform())
	return 0
}

func (m *meta) printJSON(v any) int {
	enc := json.NewEncoder(m.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		m.fail("Cannot write JSON", err)
		return 1
	}
	return 0
}

// cmdState dispatches `llorch state list|show|rm|pull|push`.
func cmdState(m *meta, args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(m.stderr, "Usage: llorch state <list|show|rm|pull|push> [options] [ADDRESS...|FILE]")
		return 1
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list":
		return stateList(m, rest)
	case "show":
		return stateShow(m, rest)
	case "rm":
		return stateRm(m, rest)
	case "pull":
		return statePull(m, rest)
	case "push":
		return statePush(m, rest)
	}
	m.errorf("Unknown state subcommand", "llorch state has no subcommand %q; use list, show, rm, pull or push.", sub)
	return 1
}

// storeFromConfig opens the state store the llorch {} block of the
// configuration in the working directory names.
func (m *meta) storeFromConfig() (*config.Config, state.Store, bool) {
	cfg, ok := m.loadSettings()
	if !ok {
		return nil, nil, false
	}
	s, ok := m.openStore(cfg.Settings)
	return cfg, s, ok
}

// stateFromConfig reads the state the configuration in the working
// directory points at (its llorch {} block).
func (m *meta) stateFromConfig() (state.Store, *state.State, bool) {
	cfg, s, ok := m.storeFromConfig()
	if !ok {
		return nil, nil, false
	}
	st, ok := m.readState(s)
	if ok {
		m.removeStaleHandoffs(m.dirs(cfg), nil)
	}
	return s, st, ok
}

// lockedState takes the state lock for op and reads the state the llorch
// {} block points at; the caller runs unlock when done.
func (m *meta) lockedState(lf lockFlags, op string) (state.Store, *state.State, func(), bool) {
	cfg, s, ok := m.storeFromConfig()
	if !ok {
		return nil, nil, nil, false
	}
	unlock, ok := m.lock(s, lf, op)
	if !ok {
		return nil, nil, nil, false
	}
	st, ok := m.readState(s)
	if !ok {
		unlock()
		return nil, nil, nil, false
	}
	m.removeStaleHandoffs(m.dirs(cfg), nil)
	return s, st, unlock, true
}

func stateList(m *meta, args []string) int {
	fs := flagSet("state list")
	if !m.parseFlags(fs, args) {
		return 1
	}
	_, st, ok := m.stateFromConfig()
	if !ok {
		return 1
	}
	filters := fs.Args()
	for _, addr := range st.Addrs() {
		for _, line := range append([]string{addr}, replicaAddrs(addr, st.Pools[addr])...) {
			if matchesAny(line, filters) {
				fmt.Fprintln(m.stdout, line)
			}
		}
	}
	return 0
}

func replicaAddrs(addr string, p *state.Pool) []string {
	out := make([]string, 0, len(p.Replicas))
	for _, r := range p.Replicas {
		out = append(out, addr+"/"+r.ID)
	}
	return out
}

// matchesAny reports whether addr is one of filters or lies under one
// (pool.embed covers pool.embed["bge"] and pool.embed["bge"]/r0).
func matchesAny(addr string, filters []string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if addr == f || strings.HasPrefix(addr, f+"/") || strings.HasPrefix(addr, f+"[") {
			return true
		}
	}
	return false
}

func stateShow(m *meta, args []string) int {
	fs := flagSet("state show")
	if !m.parseFlags(fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		m.errorf("Missing address", "llorch state show takes exactly one address, like pool.chat or pool.chat/r0. Run \"llorch state list\" to see them.")
		return 1
	}
	_, st, ok := m.stateFromConfig()
	if !ok {
		return 1
	}
	a, ok := m.argAddr("state show", fs.Arg(0), false)
	if !ok {
		return 1
	}
	addr, replicaID := a.String(), a.Replica
	p := st.Pools[a.PoolAddr()]
	var v any = p
	if p != nil && replicaID != "" {
		if r := p.Replica(replicaID); r != nil {
			v = r
		} else {
			p = nil
		}
	}
	if p == nil {
		m.errorf("No such address in the state", "%s is not in the state. Run \"llorch state list\" to see what is.", addr)
		return 1
	}
	fmt.Fprintf(m.stdout, "# %s:\n", addr)
	return m.printJSON(v)
}

func stateRm(m *meta, args []string) int {
	fs := flagSet("state rm")
	var lf lockFlags
	lf.add(fs)
	dryRun := fs.Bool("dry-run", false, "only say what would be removed")
	if !m.parseFlags(fs, args) {
		return 1
	}
	if fs.NArg() == 0 {
		m.errorf("Missing address", "llorch state rm takes one or more pool addresses, like pool.chat.")
		return 1
	}
	s, st, unlock, ok := m.lockedState(lf, "state rm")
	if !ok {
		return 1
	}
	defer unlock()
	var removed, notes []string
	for _, addr := range fs.Args() {
		p, found := st.Pools[addr]
		if !found {
			m.errorf("No such pool in the state", "%s is not in the state (state rm takes pool addresses). Run \"llorch state list\" to see them.", addr)
			return 1
		}
		removed = append(removed, addr)
		delete(st.Pools, addr)
		var sups, pids []string
		for _, r := range p.Replicas {
			if r.SupervisorPID > 0 {
				sups = append(sups, fmt.Sprintf("%s supervisor pid %d", r.ID, r.SupervisorPID))
				pids = append(pids, strconv.Itoa(r.SupervisorPID))
			}
		}
		if len(sups) > 0 {
			notes = append(notes, fmt.Sprintf("%s's engines keep running and are no longer managed by llorch (%s). To stop them, run: kill %s",
				addr, strings.Join(sups, ", "), strings.Join(pids, " ")))
		}
	}
	if *dryRun {
		for _, a := range removed {
			fmt.Fprintf(m.stdout, "Would remove %s\n", a)
		}
		return 0
	}
	if err := s.Write(m.ctx, st); err != nil {
		m.fail("Failed to save the state", err)
		return 1
	}
	fmt.Fprintf(m.stdout, "Successfully removed %d pool(s) from the state.\n", len(removed))
	for _, n := range notes {
		fmt.Fprintf(m.stdout, "\nNote: %s\n", n)
	}
	return 0
}

func statePull(m *meta, args []string) int {
	fs := flagSet("state pull")
	backup := fs.Bool("backup", false, "print the backup: the state the last write replaced")
	if !m.parseFlags(fs, args) {
		return 1
	}
	var st *state.State
	if *backup {
		_, s, ok := m.storeFromConfig()
		if !ok {
			return 1
		}
		var err error
		if st, err = s.ReadBackup(m.ctx); err != nil {
			m.fail("Failed to read the backup", err)
			return 1
		}
	} else {
		var ok bool
		if _, st, ok = m.stateFromConfig(); !ok {
			return 1
		}
	}
	data, err := state.Encode(st)
	if err != nil {
		m.fail("Cannot encode the state", err)
		return 1
	}
	_, _ = m.stdout.Write(data)
	return 0
}

// statePush is Terraform's state push: it replaces the stored state with a
// file ("-" for standard input), refusing another lineage or an older
// serial unless -force.
func statePush(m *meta, args []string) int {
	fs := flagSet("state push")
	var lf lockFlags
	lf.add(fs)
	force := fs.Bool("force", false, "write the state even if its lineage differs or its serial is older (or the stored state is corrupt)")
	if !m.parseFlags(fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		m.errorf("Missing state file", "llorch state push takes one state file (or - for standard input): llorch state push errored.state.json.")
		return 1
	}
	path := fs.Arg(0)
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(m.stdin)
	} else {
		data, err = afero.ReadFile(m.fs, path)
	}
	if err != nil {
		m.fail("Failed to read the state file", err)
		return 1
	}
	st, err := state.Decode(data, path, "")
	if err != nil {
		m.fail("Invalid state file", err)
		return 1
	}
	_, s, ok := m.storeFromConfig()
	if !ok {
		return 1
	}
	unlock, ok := m.lock(s, lf, "state push")
	if !ok {
		return 1
	}
	defer unlock()
	if err := s.Push(m.ctx, st, *force); err != nil {
		var pe *state.PushError
		if errors.As(err, &pe) {
			m.errorf("Failed to write the state", "%s\n\nThe stored state was left as it is. Check that %s is the state you mean to store; llorch state push -force stores it anyway.", sentence(err), path)
			return 1
		}
		m.fail("Failed to write the state", err)
		return 1
	}
	return 0
}

func cmdForceUnlock(m *meta, args []string) int {
	fs := flagSet("force-unlock")
	force := fs.Bool("force", false, "do not ask for confirmation")
	if !m.parseFlags(fs, args) {
		return 1
	}
	if fs.NArg() != 1 {
		m.errorf("Missing lock ID", "llorch force-unlock takes the lock ID that the lock error showed: llorch force-unlock ID.")
		return 1
	}
	cfg, ok := m.loadSettings()
	if !ok {
		return 1
	}
	id := fs.Arg(0)
	if !*force {
		if !m.confirm(fmt.Sprintf("Do you really want to force-unlock?\n  llorch will remove the lock on the state (lock ID %s).\n  This cannot be undone. Only 'yes' will be accepted to confirm.", id), "force-unlock", "-force") {
			return 1
		}
	}
	s, ok := m.openStore(cfg.Settings)
	if !ok {
		return 1
	}
	if err := s.ForceUnlock(m.ctx, id); err != nil {
		m.fail("Failed to unlock the state", err)
		return 1
	}
	fmt.Fprintln(m.stdout, "llorch state has been successfully unlocked!")
	return 0
}
