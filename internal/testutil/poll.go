package testutil

import "time"

// Poll calls cond until it holds or timeout passes (backing off from 1 ms
// to 50 ms between calls), and says whether it held: a test's wait for
// something another process does, with a deadline instead of a guess.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(delay)
	}
}
