package remote

import "io"

// SetSendFilter makes EnsureFile send through f until restore is called.
func SetSendFilter(f func(io.Reader) io.Reader) (restore func()) {
	old := sendFilter
	sendFilter = f
	return func() { sendFilter = old }
}
