package plan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/natstest"
)

// A replay into a purged stream stores every event again: the purge makes
// the server forget the ids of the duplicate window, checked by asking it,
// and the stream keeps its window.
func TestPurgeForgetsDuplicateIDs(t *testing.T) {
	_, _, js := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	publish := func() (stored int) {
		for i := range 5 {
			ack, err := js.Publish(ctx, "out.x", []byte("e"), jetstream.WithMsgID(fmt.Sprintf("id-%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			if !ack.Duplicate {
				stored++
			}
		}
		return stored
	}
	if n := publish(); n != 5 {
		t.Fatalf("stored %d of 5", n)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := prepareOutput(ctx, js, "OUT", false, log)
	if err == nil || !strings.Contains(err.Error(), "output stream OUT holds 5 messages") {
		t.Fatalf("without --purge: %v", err)
	}
	for round := range 3 {
		if err := prepareOutput(ctx, js, "OUT", true, log); err != nil {
			t.Fatal(err)
		}
		if n := publish(); n != 5 {
			t.Fatalf("round %d: after the purge, %d of 5 events stored again, the others taken for duplicates", round, n)
		}
	}
	s, err := js.Stream(ctx, "OUT")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Duplicates != 2*time.Minute || info.State.Msgs != 5 {
		t.Errorf("after the purges: duplicate window %s, %d messages; want 2m0s and 5", info.Config.Duplicates, info.State.Msgs)
	}
}
