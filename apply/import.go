package apply

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// ImportRequest names a running engine to adopt as one replica.
type ImportRequest struct {
	Addr string // canonical replica address: "pool.chat/r0"
	PID  int    // the engine
	Port int    // the port it serves on; 0: the one port it listens on
}

// Import puts a running engine that llorch did not start (by hand, or by
// systemd) under llorch as replica req.Addr of a configured pool, without
// restarting it, as Terraform's import adopts an existing resource. The
// pool's provider prepares the engine as apply would (so a restart later
// runs the llorch way); the running engine must answer ready on its port
// and serve the pool's model (the provider's identity probe). Then a
// supervisor watches it, and when it ends starts the pool's engine from
// the spec. The replica is recorded, so the next plan compares it with the
// configuration like any other.
//
// Nothing is signalled or recorded when a check fails.
func Import(ctx context.Context, p *plan.Plan, deps Deps, opts Options, req ImportRequest) (*state.State, error) {
	poolAddr, id := plan.SplitReplicaAddr(req.Addr)
	if id == "" {
		return nil, fmt.Errorf("%s names a pool; import adopts one engine as one replica: write %s/r0 (or another replica)", req.Addr, req.Addr)
	}
	d := p.Desired[poolAddr]
	if d == nil {
		return nil, fmt.Errorf("%s is not in the configuration; add its pool block first: import adopts an engine as a replica of a configured pool", poolAddr)
	}
	if i, _ := plan.ReplicaIndex(id); i >= d.Pool.Replicas {
		return nil, fmt.Errorf("%s has %d replica(s), r0 to r%d, so %s is not one of them; raise its replicas first", poolAddr, d.Pool.Replicas, d.Pool.Replicas-1, id)
	}
	r, err := newRunner(ctx, p, deps, opts)
	if err != nil {
		return nil, err
	}
	generation := 0
	if sp := r.st.Pools[poolAddr]; sp != nil {
		if rep := sp.Replica(id); rep != nil {
			if st, live := r.liveStatus(rep.RunDir); live {
				return nil, fmt.Errorf("%s is already supervised by llorch (engine pid %d, %s); drain it first (llorch drain %s) to import another engine in its place", req.Addr, st.PID, st.State, req.Addr)
			}
			generation = rep.Generation + 1
		}
	}
	ticks, err := supervisor.StartTicks(req.PID)
	if err != nil {
		return nil, fmt.Errorf("no process has pid %d (%v); give the pid of the running engine", req.PID, err)
	}
	on, err := listenAddr(req, configuredPort(d, id))
	if err != nil {
		return nil, err
	}

	pe, err := r.ensure(d)
	if err != nil {
		return nil, err
	}
	rpe := pe.ForReplica(id, on.Port)
	rpe.Host = on.Host
	spec := supervisorSpec(d, rpe, r.opts.Dirs, generation)
	if err := supervisor.VerifyAdoptable(r.work, spec, req.PID); err != nil {
		return nil, fmt.Errorf("not importing pid %d as %s: %w", req.PID, req.Addr, err)
	}
	spec.Adopt = &supervisor.Adoption{PID: req.PID, StartTicks: ticks}

	if err := r.mutate(poolAddr, func(st *state.State) {
		if st.Pools[poolAddr] == nil {
			st.Pools[poolAddr] = &state.Pool{
				Engine: d.Pool.Engine, SpecHash: d.SpecHash, Spec: d.Spec,
				Prepared: recordPrepared(r.deps.Fs, d, pe), Replicas: []*state.Replica{},
			}
		}
	}); err != nil {
		return nil, err
	}
	rec := &state.Replica{ID: id, Status: state.StatusFailed, Generation: generation}
	if !r.acquire() {
		return nil, ErrInterrupted
	}
	r.hooks.pre(req.Addr, StepImport)
	res, lerr := r.launchSpec(spec, rec, StepImport)
	r.release()
	if res.client != nil {
		_ = res.client.Close()
	}
	if err := r.mutate(poolAddr, func(st *state.State) { putReplica(st.Pools[poolAddr], res.replica) }); err != nil {
		r.fail(req.Addr, err)
	}
	if lerr != nil {
		r.fail(req.Addr, lerr)
	}
	if err := r.fold(); err != nil {
		r.fail("run", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.DeepCopy(), r.errs.ErrorOrNil()
}

// listenAddr is where the engine to import serves: req.Port, or the one
// port it listens on (the configured one when it listens on several).
func listenAddr(req ImportRequest, configured int) (supervisor.Listening, error) {
	ls, err := supervisor.ListeningOn(req.PID)
	if err != nil {
		return supervisor.Listening{}, err
	}
	ports := make([]string, len(ls))
	for i, l := range ls {
		ports[i] = strconv.Itoa(l.Port)
	}
	pick := func(port int) (supervisor.Listening, bool) {
		i := slices.IndexFunc(ls, func(l supervisor.Listening) bool { return l.Port == port })
		if i < 0 {
			return supervisor.Listening{}, false
		}
		return ls[i], true
	}
	switch {
	case len(ls) == 0:
		return supervisor.Listening{}, fmt.Errorf("process %d listens on no TCP port; is it the engine? (an engine still loading may not listen yet)", req.PID)
	case req.Port != 0:
		if l, ok := pick(req.Port); ok {
			return l, nil
		}
		return supervisor.Listening{}, fmt.Errorf("process %d does not listen on port %d (it listens on %s)", req.PID, req.Port, strings.Join(ports, ", "))
	case len(ls) == 1:
		return ls[0], nil
	}
	if l, ok := pick(configured); ok && configured != 0 {
		return l, nil
	}
	return supervisor.Listening{}, fmt.Errorf("process %d listens on ports %s; say which one serves with -port", req.PID, strings.Join(ports, ", "))
}

// ParseImportURL reads `llorch import -url`: the host and port of an
// engine's base URL ("http://127.0.0.1:8080").
func ParseImportURL(raw string) (host string, port int, err error) {
	rest, ok := strings.CutPrefix(raw, "http://")
	if !ok {
		return "", 0, fmt.Errorf("-url %q is not an http:// URL like http://127.0.0.1:8080", raw)
	}
	rest, _, _ = strings.Cut(rest, "/")
	h, ps, err := net.SplitHostPort(rest)
	if err == nil {
		port, err = strconv.Atoi(ps)
	}
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("-url %q does not name a port, like http://127.0.0.1:8080", raw)
	}
	return h, port, nil
}
