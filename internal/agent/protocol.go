package agent

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/version"
	"github.com/llorch/llorch/state/handoff"
)

// ProtocolVersion is the version of the agent protocol this llorch
// speaks. Change it with any change a peer of the previous version would
// misread.
const ProtocolVersion = 1

// Hello is the first message of each side.
type Hello struct {
	Protocol int    `json:"protocol"`
	Llorch   string `json:"llorch"` // version.Version
	// Build is the VCS revision ("+dirty" when modified), else "source "
	// and version.Source, else "unknown".
	Build string `json:"build"`
}

func (h Hello) String() string {
	return fmt.Sprintf("protocol %d (llorch %s, build %s)", h.Protocol, h.Llorch, h.Build)
}

// Own is this process's hello.
func Own() Hello {
	return Hello{Protocol: ProtocolVersion, Llorch: version.Version, Build: build()}
}

func build() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" && version.Source != "" { // make build without version control
		src := version.Source
		if len(src) > 12 {
			src = src[:12]
		}
		return "source " + src
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "+dirty"
	}
	return rev
}

// helloMsg is the hello on the wire.
type helloMsg struct {
	Hello *Hello `json:"hello"`
}

// The requests.
const (
	opStatus   = "status"
	opLaunch   = "launch"
	opStop     = "stop"
	opDrain    = "drain"
	opHandoffs = "handoffs"
	opCancel   = "cancel"
)

type request struct {
	ID     uint64           `json:"id"`
	Op     string           `json:"op"`
	Spec   *supervisor.Spec `json:"spec,omitempty"`    // launch
	RunDir string           `json:"run_dir,omitempty"` // stop, drain
	// Grace is stop's grace, drain's deadline; 0: the spec's.
	Grace time.Duration `json:"grace,omitempty"`
}

type response struct {
	ID       uint64             `json:"id"`
	Error    string             `json:"error,omitempty"`
	Status   *supervisor.Status `json:"status,omitempty"` // launch, drain
	Replicas []Replica          `json:"replicas,omitempty"`
	Handoffs []Handoff          `json:"handoffs,omitempty"`
}

// Replica is one run directory on the machine, as status reports it.
type Replica struct {
	RunDir string `json:"run_dir"`
	// Status is the last one the supervisor recorded (status.json).
	Status supervisor.Status `json:"status"`
	// Running says the supervisor Status names runs in RunDir.
	Running bool `json:"running"`
	// Error says why there is no Status (no status.json yet, or an
	// unreadable one).
	Error string `json:"error,omitempty"`
}

// Handoff is a run directory's handoff file.
type Handoff struct {
	RunDir string       `json:"run_dir"`
	Path   string       `json:"path"`
	File   handoff.File `json:"file"`
	Error  string       `json:"error,omitempty"` // the file or the spec could not be read
}
