package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/version"
	"github.com/llorch/llorch/internal/views"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

func cmdImport(m *meta, args []string) int {
	fs := flagSet("import")
	var vars varFlags
	vars.add(fs)
	var lf lockFlags
	lf.add(fs)
	var v viewFlags
	v.add(fs, false)
	port := fs.Int("port", 0, "the port the engine serves on, when it listens on several")
	url := fs.String("url", "", "the engine's URL (http://HOST:PORT), instead of its PID")
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(v)
	want := 2
	if *url != "" {
		want = 1
	}
	if fs.NArg() != want {
		m.errorf("Wrong arguments", "llorch import takes a replica address and the engine's pid, like llorch import pool.chat/r0 4242, or the address and -url, like llorch import -url http://127.0.0.1:8080 pool.chat/r0.")
		return 1
	}
	addr, ok := m.argAddr("import", fs.Arg(0), true)
	if !ok {
		return 1
	}
	req := apply.ImportRequest{Addr: addr.String(), Port: *port}
	if *url != "" {
		host, p, err := apply.ParseImportURL(*url)
		if err != nil {
			m.errorf("Invalid -url", "%s.", err)
			return 1
		}
		if req.PID, err = supervisor.ListenerOf(host, p); err != nil {
			m.errorf("No engine at -url", "%s.", sentence(err))
			return 1
		}
		req.Port = p
	} else {
		pid, err := strconv.Atoi(fs.Arg(1))
		if err != nil || pid <= 0 {
			m.errorf("Invalid pid", "%q is not a process id; give the pid of the running engine (pgrep -a llama-server shows it).", fs.Arg(1))
			return 1
		}
		req.PID = pid
	}
	if *port < 0 || *port > 65535 {
		m.errorf("Invalid -port", "-port must be a TCP port between 1 and 65535 (got %d).", *port)
		return 1
	}

	s, ok := m.openSession(vars.args, lf, "import")
	if !ok {
		return 1
	}
	defer s.unlock()
	p, ok := m.makePlan(s, plan.Options{Refresh: true})
	if !ok {
		return 1
	}
	_, runErr, ok := m.runOnSession(s, views.NewHumanHook(m.stdout, nil, 0), func(ctx context.Context, deps apply.Deps) (*state.State, error) {
		return apply.Import(ctx, p, deps, apply.Options{Config: s.cfg, Dirs: s.dirs, LlorchVersion: version.Version, Pins: s.planner.Pins}, req)
	})
	if !ok {
		return 1
	}
	if runErr != nil {
		m.fail("Import failed", runErr)
		return 1
	}
	fmt.Fprintf(m.stdout, "\nImport successful! llorch supervises pid %d as %s now, without a restart: when it ends, llorch starts the pool's engine the way apply would. Run \"llorch plan\" to compare it with the configuration.\n", req.PID, req.Addr)
	if unit := supervisor.SystemdUnit(req.PID); unit != "" {
		fmt.Fprintf(m.stdout, "\nWarning: pid %d runs in the systemd unit %s. Stop systemd from restarting it (set Restart=no with systemctl edit %s, and systemctl disable %s), or a stop by llorch brings it back beside llorch's engine.\n", req.PID, unit, unit, unit)
	}
	return 0
}
