// Package handoff defines the handoff file routers read (DESIGN §7): one
// small JSON document per ready replica, written atomically, mode 0644, with
// no secrets in it. The format is a contract with third parties: add fields,
// never rename or remove them.
package handoff

import "time"

// File is one handoff document.
type File struct {
	Engine           string            `json:"engine"`
	EngineVersion    string            `json:"engine_version"`
	ProvisioningMode string            `json:"provisioning_mode"`
	URL              string            `json:"url"`
	PoolID           string            `json:"pool_id"`
	ReplicaID        string            `json:"replica_id"`
	Model            Model             `json:"model"`
	Flags            []string          `json:"flags"`
	DeviceMask       string            `json:"device_mask"`
	PID              int               `json:"pid"`
	ReadyAt          time.Time         `json:"ready_at"`
	Draining         bool              `json:"draining"`
	Labels           map[string]string `json:"labels"`

	// What a router needs to check for itself that the engine still runs:
	// the file is current only while /proc/sys/kernel/random/boot_id reads
	// BootID and process PID exists with PIDStartTicks as field 22 of
	// /proc/PID/stat (a pid reused by another process starts later).
	// Files written before these fields existed lack them.
	SupervisorPID int    `json:"supervisor_pid,omitempty"`
	PIDStartTicks uint64 `json:"pid_start_ticks,omitempty"`
	BootID        string `json:"boot_id,omitempty"`
}

// Model names the model a replica serves.
type Model struct {
	Ref    string `json:"ref"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}
