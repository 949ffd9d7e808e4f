//go:build !linux

package supervisor

// procNet has no /proc to read outside Linux: it never knows who holds a
// port, so errors name no pid and ownership checks fall back to /props.
type procNet struct {
	root string
}

func (procNet) portOwner(host string, port int) (int, string) { return 0, "" }

func (procNet) foreignListener(host string, port, pgid int) (int, string) { return 0, "" }
