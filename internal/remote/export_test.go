package remote

import (
	"io"
	"time"
)

// SetSendFilter makes EnsureFile send through f until restore is called.
func SetSendFilter(f func(io.Reader) io.Reader) (restore func()) {
	old := sendFilter
	sendFilter = f
	return func() { sendFilter = old }
}

// SetKillGrace sets how long a cancelled Run waits after each signal.
func SetKillGrace(d time.Duration) (restore func()) {
	old := killGrace
	killGrace = d
	return func() { killGrace = old }
}
