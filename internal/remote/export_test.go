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

// SetRacyWindow sets how old a file must be for its sum to be kept; a
// negative window keeps every sum.
func SetRacyWindow(d time.Duration) (restore func()) {
	old := racyWindow
	racyWindow = d
	return func() { racyWindow = old }
}
