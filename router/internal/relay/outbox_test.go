package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/natstest"
)

// The outbox hands back what the server says of each publish: stored,
// stored before (a duplicate id), refused with JetStream's error, no
// stream capturing the subject; and fails what waits for an ack when the
// connection drops, at once rather than after the timeout.
func TestOutbox(t *testing.T) {
	srv, nc, js := natstest.Start(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OUT", Subjects: []string{"out.>"}}); err != nil {
		t.Fatal(err)
	}
	o, err := newOutbox(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	send := func(subject, id, expect string) (bool, error) {
		t.Helper()
		m := nats.NewMsg(subject)
		m.Header.Set(jetstream.MsgIDHeader, id)
		if expect != "" {
			m.Header.Set(jetstream.ExpectedStreamHeader, expect)
		}
		tok, err := o.publish(m)
		if err != nil {
			t.Fatal(err)
		}
		return o.wait(ctx, tok, timer, 5*time.Second)
	}
	if dup, err := send("out.a", "1", "OUT"); dup || err != nil {
		t.Errorf("first publish: dup %v, %v", dup, err)
	}
	if dup, err := send("out.a", "1", "OUT"); !dup || err != nil {
		t.Errorf("same id again: dup %v, %v; want a duplicate", dup, err)
	}
	var apiErr *jetstream.APIError
	if _, err := send("out.b", "2", "ELSEWHERE"); !errors.As(err, &apiErr) || apiErr.ErrorCode != 10060 {
		t.Errorf("wrong expected stream: %v, want JetStream's error 10060", err)
	}
	if _, err := send("nowhere", "3", ""); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("no stream: %v, want %v", err, jetstream.ErrNoStreamResponse)
	}
	// A clustered stream's leader writes the flag with a space.
	for ack, want := range map[string]bool{`{"stream":"S","seq":1,"duplicate": true}`: true, `{"stream":"S","seq":1,"duplicate":true}`: true,
		`{"stream":"S","seq":1}`: false, `{"stream":"S","seq":1,"duplicate":false}`: false} {
		if duplicate([]byte(ack)) != want {
			t.Errorf("duplicate(%s) = %v", ack, !want)
		}
	}
	if _, err := o.wait(ctx, 999, timer, time.Second); err == nil {
		t.Error("waiting on a token never published: no error")
	}

	// A subscriber that never answers: the publish waits for ever, until
	// the connection drops.
	if _, err := nc.Subscribe("hold", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	tok, err := o.publish(nats.NewMsg("hold"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Shutdown()
	start := time.Now()
	if _, err := o.wait(ctx, tok, timer, time.Minute); !errors.Is(err, errDisconnected) || time.Since(start) > 10*time.Second {
		t.Errorf("after the connection dropped: %v after %s, want %v at once", err, time.Since(start), errDisconnected)
	}
}
