//go:build !race

package tunnelio

// raceDetector: under the race detector sync.Pool drops a quarter of
// what it is given, on purpose.
const raceDetector = false
