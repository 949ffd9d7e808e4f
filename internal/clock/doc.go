// Package clock is the only time seam in llorch: code that decides on time
// (backoff, deadlines, progress ticks) takes a Clock so tests can drive it.
// Real reads the wall clock; Fake is a manual clock whose timers fire only
// when a test advances it.
package clock
