//go:build !linux

package discovery

import "os/exec"

// setProcAttr does nothing where there is no parent-death signal; plugins
// are still stopped by Resolver.Close and go-plugin's CleanupClients.
func setProcAttr(*exec.Cmd) {}
