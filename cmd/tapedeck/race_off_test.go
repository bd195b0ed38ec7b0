//go:build !race

package main

// raceEnabled says the tests run under the race detector: the serve processes they start are built
// with it too.
const raceEnabled = false
