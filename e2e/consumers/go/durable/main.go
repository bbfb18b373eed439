// Command durable reads pgjet's native events with a durable pull consumer:
// after a restart it goes on after the last event it acknowledged, and an
// event delivered again (its ack was lost) is recognised by its Nats-Msg-Id
// and not applied twice.
//
//	NATS_URL=nats://127.0.0.1:4222 STREAM=PGJET_EVENTS SUBJECT='postgres.public.>' go run ./durable
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// event is the part of a native event this consumer reads.
type event struct {
	Op     string          `json:"op"` // insert, update, delete, truncate, message
	Schema string          `json:"schema"`
	Table  string          `json:"table"`
	LSN    string          `json:"lsn"` // commit LSN of the transaction
	Index  uint64          `json:"index"`
	Key    json.RawMessage `json:"key"`
	After  json.RawMessage `json:"after"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(env("NATS_URL", nats.DefaultURL))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	// The server keeps the durable's position: create it once, attach to it
	// on every start.
	cons, err := js.CreateOrUpdateConsumer(ctx, env("STREAM", "PGJET_EVENTS"), jetstream.ConsumerConfig{
		Durable:       env("DURABLE", "orders-service"),
		FilterSubject: env("SUBJECT", "postgres.>"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second, // redelivered if not acked by then
		MaxDeliver:    10,
	})
	if err != nil {
		log.Fatal(err)
	}
	// Applied ids. A real service stores the id with its effect, in the
	// same database transaction (a unique column), so that a redelivery
	// after a crash is skipped too.
	applied := map[string]bool{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		id := m.Headers().Get(jetstream.MsgIDHeader)
		if !applied[id] {
			var ev event
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				log.Printf("%s: %v", m.Subject(), err)
				m.Term() // never redeliver what cannot be read
				return
			}
			fmt.Printf("%s %s.%s key=%s lsn=%s index=%d\n", ev.Op, ev.Schema, ev.Table, ev.Key, ev.LSN, ev.Index)
			applied[id] = true
		}
		if err := m.Ack(); err != nil {
			log.Printf("ack %s: %v", id, err)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
	cc.Stop()
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
