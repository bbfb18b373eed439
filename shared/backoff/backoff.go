// Package backoff waits between the attempts of a retry loop: from Min,
// doubling up to Max, with jitter, ending early with its context. The
// clock is injectable, for tests.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Clock is what a Backoff waits on.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// DefaultJitter is the share of a wait that may be taken off at random, so
// that clients that failed together do not retry together.
const DefaultJitter = 0.1

// Backoff is one retry loop's waits; not safe for concurrent use.
type Backoff struct {
	min, max time.Duration
	next     time.Duration
	// Jitter in [0, 1): each wait is its nominal value less a random
	// share of at most Jitter, never below min.
	Jitter float64
	// Clock waits; the real one unless a test sets another.
	Clock Clock
	// Rand returns a number in [0, 1); math/rand/v2's unless set.
	Rand func() float64
}

// New returns a Backoff whose first wait is min, doubling up to max.
func New(min, max time.Duration) *Backoff {
	return &Backoff{min: min, max: max, next: min, Jitter: DefaultJitter, Clock: realClock{}, Rand: rand.Float64}
}

// Next returns the wait before the next attempt and doubles the one after.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	if b.Jitter > 0 {
		d -= time.Duration(b.Rand() * b.Jitter * float64(d))
	}
	return max(d, b.min)
}

// Reset starts over from min.
func (b *Backoff) Reset() { b.next = b.min }

// Sleep waits d, or until ctx ends (returning its error).
func (b *Backoff) Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.Clock.After(d):
		return nil
	}
}

// Wait waits Next(), or until ctx ends (returning its error).
func (b *Backoff) Wait(ctx context.Context) error { return b.Sleep(ctx, b.Next()) }
