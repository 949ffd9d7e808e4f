//go:build !linux

package supervisor

import "context"

// waitGone cannot wait for a process that is not a child without pidfds;
// callers already saw the supervisor close its socket, which is the best
// signal left.
func waitGone(ctx context.Context, pid int) error { return ctx.Err() }
