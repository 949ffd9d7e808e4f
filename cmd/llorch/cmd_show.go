package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/planfile"
	"github.com/llorch/llorch/state"
)

func cmdShow(m *meta, args []string) int {
	fs := flagSet("show")
	var v viewFlags
	v.add(fs, true)
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(v)
	switch fs.NArg() {
	case 0:
		return showState(m, v.json)
	case 1:
		// The plan is rebuilt from its data (variables, observations,
		// the providers' answers) against the configuration and state it
		// was made for, as apply does, and rendered as plan renders it.
		s, p, ok := m.loadSavedPlan(fs.Arg(0), planFlags{}, "show")
		if !ok {
			return 1
		}
		defer s.unlock()
		if !m.renderPlan(p, v.json) {
			return 1
		}
		return 0
	}
	m.errorf("Too many arguments", "llorch show takes at most one saved plan file.")
	return 1
}

func showState(m *meta, asJSON bool) int {
	_, st, ok := m.stateFromConfig()
	if !ok {
		return 1
	}
	if asJSON {
		data, err := state.Encode(st)
		if err != nil {
			m.fail("Cannot encode the state", err)
			return 1
		}
		_, _ = m.stdout.Write(data)
		return 0
	}
	if len(st.Pools) == 0 {
		fmt.Fprintln(m.stdout, "The state is empty. Run \"llorch apply\" to create pools.")
		return 0
	}
	for i, addr := range st.Addrs() {
		p := st.Pools[addr]
		if i > 0 {
			fmt.Fprintln(m.stdout)
		}
		fmt.Fprintf(m.stdout, "# %s:\npool %q {\n", addr, poolLabel(addr))
		fmt.Fprintf(m.stdout, "    engine         = %q\n", p.Engine)
		if p.Prepared != nil {
			fmt.Fprintf(m.stdout, "    engine_version = %q\n", p.Prepared.EngineVersion)
			fmt.Fprintf(m.stdout, "    binary_path    = %q\n", p.Prepared.BinaryPath)
			fmt.Fprintf(m.stdout, "    model_path     = %q\n", p.Prepared.ModelPath)
		}
		if p.Spec != nil {
			fmt.Fprintf(m.stdout, "    model          = %q\n", p.Spec.Model.Ref)
		}
		fmt.Fprintf(m.stdout, "    spec_hash      = %q\n", p.SpecHash)
		for _, r := range p.Replicas {
			fmt.Fprintf(m.stdout, "    replica %q { status = %q, port = %d, pid = %d, supervisor_pid = %d, restarts = %d }\n",
				r.ID, r.Status, r.Port, r.PID, r.SupervisorPID, r.Restarts)
		}
		fmt.Fprintln(m.stdout, "}")
	}
	return 0
}

// poolLabel is the label of the pool block an address comes from:
// "embed" for pool.embed["bge"].
func poolLabel(addr string) string {
	a, err := plan.ParseAddr(addr)
	if err != nil {
		return addr // a hand-edited state; show what it says
	}
	return a.Name
}

// readPlanFile reads a saved plan, printing why it cannot be used.
func (m *meta) readPlanFile(path string) (*planfile.File, bool) {
	pf, err := planfile.Read(m.fs, path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		m.errorf("Failed to load the saved plan", "There is no saved plan %s in %s. Save one with llorch plan -out=%s.", path, m.dir, path)
		return nil, false
	case err != nil:
		m.fail("Failed to load the saved plan", err)
		return nil, false
	}
	return pf, true
}
