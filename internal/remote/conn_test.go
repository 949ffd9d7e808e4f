package remote_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/remote"
	"github.com/llorch/llorch/internal/remote/sshtest"
)

func TestRun(t *testing.T) {
	c := dial(t, shared(t))
	tests := []struct {
		name, cmd, stdin string
		want             remote.Result
	}{
		{name: "echo prints", cmd: "echo hello", want: remote.Result{Stdout: []byte("hello\n")}},
		{name: "exit code is reported, not an error", cmd: "echo oops >&2; exit 3", want: remote.Result{Stderr: []byte("oops\n"), ExitCode: 3}},
		{name: "stdin reaches the command", cmd: "tr a-z A-Z", stdin: "shout\n", want: remote.Result{Stdout: []byte("SHOUT\n")}},
		{name: "a signal is reported as such", cmd: "kill -TERM $$", want: remote.Result{ExitCode: -1, Signal: "TERM"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdin io.Reader // nil, not a nil *strings.Reader
			if tc.stdin != "" {
				stdin = strings.NewReader(tc.stdin)
			}
			got, err := c.Run(t.Context(), tc.cmd, stdin)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Stdout) != string(tc.want.Stdout) || string(got.Stderr) != string(tc.want.Stderr) ||
				got.ExitCode != tc.want.ExitCode || got.Signal != tc.want.Signal {
				t.Errorf("Run(%q) = stdout %q stderr %q exit %d signal %q, want stdout %q stderr %q exit %d signal %q",
					tc.cmd, got.Stdout, got.Stderr, got.ExitCode, got.Signal,
					tc.want.Stdout, tc.want.Stderr, tc.want.ExitCode, tc.want.Signal)
			}
		})
	}
}

// A cancelled context kills the remote command, SIGTERM first and SIGKILL
// for one that ignores it, and Run returns once it has ended.
func TestRunCancelKillsTheCommand(t *testing.T) {
	c := dial(t, shared(t))
	defer remote.SetKillGrace(200 * time.Millisecond)()
	for name, prefix := range map[string]string{"SIGTERM": "", "SIGKILL": "trap '' TERM; "} {
		t.Run(name, func(t *testing.T) {
			// The sshd runs on this machine: the command opening the FIFO
			// is the event that says it has started.
			fifo := filepath.Join(t.TempDir(), "started")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := prefix + "echo > " + remote.Quote(fifo) + "; exec sleep 31.4159"
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() {
				_, err := c.Run(ctx, cmd, nil)
				done <- err
			}()
			f, err := os.Open(fifo) // blocks until the command opens it
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			cancel()
			err = <-done
			want := `machine "local": running "` + cmd[:57] + `...": context canceled` // long commands are cut
			if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
				t.Fatalf("Run after cancel = %v, want %s", err, want)
			}
			if out, err := exec.Command("pgrep", "-f", "sleep 31[.]4159").Output(); err == nil {
				t.Errorf("the remote command outlived Run: pgrep found %s", out)
			}
		})
	}
	// The connection is still usable.
	if res, err := c.Run(t.Context(), "true", nil); err != nil || res.ExitCode != 0 {
		t.Errorf("Run after a cancelled Run = %+v, %v", res, err)
	}
}

// Run does not wait for a Read of stdin that never returns.
func TestRunDoesNotWaitForStdin(t *testing.T) {
	c := dial(t, shared(t))
	r, w := io.Pipe()
	defer w.Close()
	res, err := c.Run(t.Context(), "echo done", r)
	if err != nil || string(res.Stdout) != "done\n" {
		t.Errorf("Run with a stdin that never ends = %q, %v", res.Stdout, err)
	}
}

func TestRunOnAClosedConnection(t *testing.T) {
	c := dial(t, shared(t))
	c.Close()
	_, err := c.Run(t.Context(), "true", nil)
	if want := `machine "local": opening an ssh session: `; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Run on a closed Conn = %v, want %s...", err, want)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/llorch": "/var/lib/llorch",
		"":                "''",
		"a b":             "'a b'",
		"it's":            `'it'\''s'`,
		"$HOME":           "'$HOME'",
	} {
		if got := remote.Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	c := dial(t, shared(t))
	weird := "it's a $HOME `x` \\ \"q\""
	res, err := c.Run(t.Context(), "printf %s "+remote.Quote(weird), nil)
	if err != nil || string(res.Stdout) != weird {
		t.Errorf("printf of a quoted word = %q, %v, want %q", res.Stdout, err, weird)
	}
}

// A session more than sshd's MaxSessions is refused with a message that
// says so.
func TestRunBeyondMaxSessions(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{MaxSessions: 1})
	c := dial(t, s)
	fifo := filepath.Join(t.TempDir(), "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	first := make(chan error, 1)
	go func() {
		_, err := c.Run(t.Context(), "echo > "+remote.Quote(fifo)+"; exec cat", r)
		first <- err
	}()
	f, err := os.Open(fifo) // the first session's command runs
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = c.Run(t.Context(), "true", nil)
	// The count of open sessions was once 0 on a loaded machine although
	// the first command was running; the message is checked around it.
	want := regexp.MustCompile(`^machine "local": the server refused another session on the connection \(\d+ open; "open failed"\): sshd allows MaxSessions at once, 10 unless its config says otherwise; run fewer commands at once$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Errorf("Run beyond MaxSessions = %v, want a match for %s", err, want)
	}
	w.Close()
	if err := <-first; err != nil {
		t.Errorf("the first Run = %v", err)
	}
}
