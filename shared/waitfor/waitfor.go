// Package waitfor makes tests wait on a condition instead of sleeping: it
// polls the condition, and fails the test naming what it waited for when
// the condition does not hold in time.
package waitfor

import (
	"testing"
	"time"
)

// Timeout is how long Condition waits: generous, as the tests run on a
// busy 2-core machine, where a condition that never holds still fails.
const Timeout = 30 * time.Second

// Condition waits until cond holds, at most Timeout.
func Condition(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within waits until cond holds, at most d.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
