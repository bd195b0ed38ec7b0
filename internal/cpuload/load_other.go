//go:build !linux

// Package cpuload measures how busy the machine's CPUs are.
package cpuload

// Meter is not implemented on this system: Measure never knows.
type Meter struct{}

// Load is the CPU use over an interval, as fractions of all cores.
type Load struct{ Busy, Niced float64 }

// Measure returns ok false: the CPU use is unknown here.
func (m *Meter) Measure() (Load, bool) { return Load{}, false }
