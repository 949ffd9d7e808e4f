package remote_test

import (
	"bufio"
	"io"
	"strings"
	"testing"
)

// A stream is a conversation: a line written to the command's stdin is
// answered on its stdout before stdin is closed.
func TestStartConverses(t *testing.T) {
	c := dial(t, shared(t))
	st, err := c.Start(t.Context(), "while read -r line; do echo \"got $line\"; done; echo bye >&2")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := bufio.NewReader(st.Stdout)
	for _, word := range []string{"one", "two"} {
		if _, err := io.WriteString(st.Stdin, word+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := "got " + word + "\n"; line != want {
			t.Fatalf("answer %q, want %q", line, want)
		}
	}
	st.Stdin.Close()
	if rest, err := io.ReadAll(out); err != nil || len(rest) != 0 {
		t.Fatalf("after EOF: %q, %v", rest, err)
	}
	if err := st.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := st.Stderr(); got != "bye" {
		t.Errorf("stderr %q, want %q", got, "bye")
	}
}

// A command that fails says how, with the end of its stderr.
func TestStartExitStatus(t *testing.T) {
	c := dial(t, shared(t))
	st, err := c.Start(t.Context(), "echo no such agent >&2; exit 127")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _ = io.Copy(io.Discard, st.Stdout)
	err = st.Wait(t.Context())
	want := `machine "local": "echo no such agent >&2; exit 127" exited with status 127: no such agent`
	if err == nil || err.Error() != want {
		t.Fatalf("Wait = %v, want %s", err, want)
	}
	<-st.Exited()
}

// Close ends a command that reads its stdin.
func TestStartCloseEndsTheCommand(t *testing.T) {
	c := dial(t, shared(t))
	st, err := c.Start(t.Context(), "cat")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	<-st.Exited()
	if err := st.Wait(t.Context()); err != nil && !strings.Contains(err.Error(), "cat") {
		t.Fatalf("Wait after Close = %v", err)
	}
}
