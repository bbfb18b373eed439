package backoff

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock fires a timer when the test advances past it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	asked   chan time.Duration
}

type waiter struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1000, 0), asked: make(chan time.Duration, 16)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	c := make(chan time.Time, 1)
	f.waiters = append(f.waiters, waiter{at: f.now.Add(d), c: c})
	f.mu.Unlock()
	f.asked <- d
	return c
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(f.now) {
			w.c <- f.now
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

func TestNextDoublesToMax(t *testing.T) {
	tests := []struct {
		name     string
		min, max time.Duration
		want     []time.Duration
	}{
		{"collector session", time.Second, 30 * time.Second, []time.Duration{1, 2, 4, 8, 16, 30, 30}},
		{"raw publish", 100 * time.Millisecond, 5 * time.Second, []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}},
		{"min equals max", 2 * time.Second, 2 * time.Second, []time.Duration{2, 2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(tt.min, tt.max)
			b.Jitter = 0
			unit := time.Second
			if tt.min < time.Second {
				unit = time.Millisecond
			}
			for i, w := range tt.want {
				if got := b.Next(); got != w*unit {
					t.Fatalf("wait %d: %v, want %v", i, got, w*unit)
				}
			}
			b.Reset()
			if got := b.Next(); got != tt.min {
				t.Fatalf("after Reset: %v, want %v", got, tt.min)
			}
		})
	}
}

// Jitter only shortens a wait, and never below min: a loop's bounds hold.
func TestJitterKeepsBounds(t *testing.T) {
	tests := []struct {
		name string
		rand float64
		want []time.Duration
	}{
		{"no share taken", 0, []time.Duration{1000, 2000, 4000}},
		{"largest share taken", 0.999999, []time.Duration{1000, 1800, 3600}},
		{"half", 0.5, []time.Duration{1000, 1900, 3800}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(time.Second, 4*time.Second)
			b.Rand = func() float64 { return tt.rand }
			for i, w := range tt.want {
				got := b.Next().Round(time.Millisecond)
				if got != w*time.Millisecond {
					t.Fatalf("wait %d: %v, want %v", i, got, w*time.Millisecond)
				}
			}
		})
	}
	b := New(time.Second, 30*time.Second)
	for range 1000 {
		if d := b.Next(); d < time.Second || d > 30*time.Second {
			t.Fatalf("wait %v outside [1s, 30s]", d)
		}
	}
}

func TestWaitOnTheClock(t *testing.T) {
	clk := newFakeClock()
	b := New(time.Second, 30*time.Second)
	b.Jitter = 0
	b.Clock = clk
	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background()) }()
	if d := <-clk.asked; d != time.Second {
		t.Fatalf("waits %v, want 1s", d)
	}
	clk.Advance(999 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("returned %v before the wait was over", err)
	case <-time.After(20 * time.Millisecond):
	}
	clk.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- b.Wait(context.Background()) }()
	if d := <-clk.asked; d != 2*time.Second {
		t.Fatalf("second wait %v, want 2s", d)
	}
	clk.Advance(2 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	clk := newFakeClock()
	b := New(time.Second, 30*time.Second)
	b.Clock = clk
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	<-clk.asked
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Wait returned %v, want context.Canceled", err)
	}
}
