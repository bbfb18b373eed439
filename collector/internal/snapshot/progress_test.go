package snapshot

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pgjet/pgjet/shared/natstest"
)

// Invariant: a Flush returns success only once what was dirty when it
// began is written, even while another Flush (Run's periodic one) has
// taken the dirty state and is still writing it. Finish is a Flush: before,
// Run's Flush could take Finish's state and then fail (its context ended
// as the initial snapshot returned) while Finish, finding nothing dirty,
// returned at once: a finished initial snapshot stayed running in the
// bucket and was taken up again as a backfill (seen in TestMetrics).
func TestFlushWaitsForTheFlushInFlight(t *testing.T) {
	srv, _, js := natstest.Start(t)
	ctx := context.Background()
	store, err := OpenStore(ctx, js, DefaultBucket, "app", true, 1)
	if err != nil {
		t.Fatal(err)
	}
	j := NewJob(InitialID, "app", KindInitial, "initial", []string{"public.t"}, nil)
	rev, err := store.Create(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProgress(store, j, rev, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// Finish's first half: the final state, dirty.
	p.mu.Lock()
	p.job.State = StateDone
	p.markDirty()
	p.mu.Unlock()

	// Run's Flush takes it and hangs in the write: the server is gone.
	srv.Shutdown()
	runCtx, stopRun := context.WithCancel(ctx)
	inFlight := make(chan error, 1)
	go func() { inFlight <- p.Flush(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		taken := !p.dirty
		p.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first Flush did not take the dirty state")
		}
		time.Sleep(time.Millisecond)
	}
	// Finish's Flush, with a bound of its own.
	finishCtx, stopFinish := context.WithTimeout(ctx, 2*time.Second)
	defer stopFinish()
	finished := make(chan error, 1)
	go func() { finished <- p.Flush(finishCtx) }()
	select {
	case err := <-finished:
		t.Fatalf("Flush returned (%v) while the Flush that took its state was still writing it", err)
	case err := <-inFlight:
		t.Fatalf("the first Flush ended (%v) before it was stopped: the test did not hold it in the write", err)
	case <-time.After(300 * time.Millisecond):
	}
	stopRun() // the snapshot returns: Run's write fails
	if err := <-inFlight; err == nil {
		t.Fatal("the first Flush wrote with no server")
	}
	if err := <-finished; err == nil {
		t.Fatal("Flush says the state is written; no server took it")
	}
}
