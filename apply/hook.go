package apply

import (
	"github.com/llorch/llorch/providers"
)

// Step names one unit of work apply performs on a pool or replica.
type Step string

const (
	StepEnsure  Step = "ensure"  // provider prepares binary and model (pool address)
	StepStart   Step = "start"   // supervisor spawns the engine and waits for readiness
	StepRestart Step = "restart" // a dead or failed replica is started again
	StepDrain   Step = "drain"   // in-flight requests finish, then the engine stops
	StepStop    Step = "stop"    // the engine stops without draining (nothing to drain)
	StepUpdate  Step = "update"  // settings changed in place, nothing restarted
	StepCleanup Step = "cleanup" // provider releases what a destroyed pool used
	// StepRollback: the engine a drain_first replacement stopped starts
	// again, because its successor could not.
	StepRollback Step = "rollback"
	// StepAdopt: a successor that an apply killed mid-replace left serving
	// is recorded in place of its predecessor (a predecessor still running
	// is stopped first), or, when it does not serve, is stopped.
	StepAdopt Step = "adopt"
	// StepImport: llorch import puts a running engine it did not start
	// under a supervisor, without restarting it.
	StepImport Step = "import"
)

// Result carries what a finished step produced, for progress output.
type Result struct {
	PID           int
	Port          int
	EngineVersion string
}

// Hook observes apply's progress. Views implement it: the human one prints
// "pool.chat/r0: Still starting... [10s elapsed]", the JSON one emits events.
// Calls for different addresses arrive concurrently.
type Hook interface {
	PreStep(addr string, step Step)
	Progress(addr string, ev providers.Event)
	PostStep(addr string, step Step, res Result, err error)
}

type hooks []Hook

func (hs hooks) pre(addr string, step Step) {
	for _, h := range hs {
		h.PreStep(addr, step)
	}
}

func (hs hooks) progress(addr string) func(providers.Event) {
	return func(ev providers.Event) {
		for _, h := range hs {
			h.Progress(addr, ev)
		}
	}
}

func (hs hooks) post(addr string, step Step, res Result, err error) {
	for _, h := range hs {
		h.PostStep(addr, step, res, err)
	}
}
