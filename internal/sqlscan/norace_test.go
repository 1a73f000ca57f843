//go:build !race

package sqlscan

// raceEnabled: timing checks are skipped under the race detector.
const raceEnabled = false
