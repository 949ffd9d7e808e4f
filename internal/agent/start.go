package agent

import (
	"context"
	"fmt"
	"path"

	"github.com/llorch/llorch/internal/remote"
)

// Agent is an agent started on a machine by StartAgent.
type Agent struct {
	*Client
	// Binary is the llorch on the machine that serves as the agent.
	Binary string
	// Uploaded says StartAgent had to send it (the machine had no copy of
	// this build).
	Uploaded bool
	stream   *remote.Stream
}

// Exited is closed once the agent process has ended.
func (a *Agent) Exited() <-chan struct{} { return a.stream.Exited() }

// shaDigits is how much of the binary's sha256 names its directory: 64
// bits, so two builds do not meet.
const shaDigits = 16

// StartAgent puts the local llorch binary localExe on conn's machine as
// DATA_DIR/bin/llorch-SHA/llorch, unless that copy is there already (see
// remote.Conn.EnsureFile), runs `llorch agent -data-dir DATA_DIR` there
// over a session of conn, and returns the connected agent. dataDir is an
// absolute path on the machine. Closing the Agent ends the agent process;
// the supervisors it launched keep running.
func StartAgent(ctx context.Context, conn *remote.Conn, localExe, dataDir string) (*Agent, error) {
	name := conn.Machine().Name
	if !path.IsAbs(dataDir) {
		return nil, fmt.Errorf("machine %q: data_dir %q is not an absolute path; give the full path of llorch's directory on the machine", name, dataDir)
	}
	sum, err := remote.LocalSHA256(localExe)
	if err != nil {
		return nil, fmt.Errorf("machine %q: reading the llorch binary to run there: %w", name, err)
	}
	bin := path.Join(dataDir, "bin", "llorch-"+sum[:shaDigits], "llorch")
	uploaded, err := conn.EnsureFile(ctx, localExe, bin, 0o755)
	if err != nil {
		return nil, err
	}
	st, err := conn.Start(ctx, "exec "+remote.Quote(bin)+" agent -data-dir "+remote.Quote(dataDir))
	if err != nil {
		return nil, err
	}
	c, err := NewClient(ctx, st.Stdout, st.Stdin, ClientOptions{Machine: name, Closer: st, Why: st.Stderr})
	if err != nil {
		return nil, err
	}
	return &Agent{Client: c, Binary: bin, Uploaded: uploaded, stream: st}, nil
}
