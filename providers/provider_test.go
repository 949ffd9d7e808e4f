package providers

import (
	"reflect"
	"testing"
)

func TestForReplicaPutsThePortWhereThePlaceholderIs(t *testing.T) {
	pe := PreparedEngine{
		Args: []string{"serve", "m", "--listen", "127.0.0.1:" + PortPlaceholder, "--port", "9"},
		Env:  map[string]string{"PORT": PortPlaceholder, "HOME": "/h"},
		Port: 9,
	}
	r1 := pe.ForReplica("r1", 8081)
	if want := []string{"serve", "m", "--listen", "127.0.0.1:8081", "--port", "9"}; !reflect.DeepEqual(r1.Args, want) {
		t.Errorf("args %q, want %q (the placeholder replaced, --port left as the provider wrote it)", r1.Args, want)
	}
	if r1.Env["PORT"] != "8081" || r1.Env["HOME"] != "/h" || pe.Env["PORT"] != PortPlaceholder || r1.Port != 8081 || r1.ReplicaID != "r1" {
		t.Errorf("replica %+v; original env %v", r1, pe.Env)
	}

	// Without the placeholder (a provider from before it), --port is rewritten.
	old := PreparedEngine{Args: []string{"-m", "x", "--port", "8080", "--port=8080"}}
	if got, want := old.ForReplica("r2", 8082).Args, []string{"-m", "x", "--port", "8082", "--port=8082"}; !reflect.DeepEqual(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
}
