// Command debezium reads events of pgjet's debezium envelope the way a
// consumer written for Debezium's PostgreSQL connector does: op, before,
// after and source of the value, the key (which Debezium puts in the Kafka
// record's key) from the Pgjet-Key header.
//
//	NATS_URL=nats://127.0.0.1:4222 STREAM=DBZ SUBJECT='dbz.>' go run ./debezium
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// change is a Debezium change event value (schemas off, as pgjet's
// default `schema: false` publishes it).
type change struct {
	Op     string          `json:"op"` // c, u, d, t, m
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	Source struct {
		Schema string `json:"schema"`
		Table  string `json:"table"`
		TxID   int64  `json:"txId"`
		LSN    int64  `json:"lsn"`
	} `json:"source"`
	TsMs int64 `json:"ts_ms"`
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
	cons, err := js.CreateOrUpdateConsumer(ctx, env("STREAM", "DBZ"), jetstream.ConsumerConfig{
		Durable:       env("DURABLE", "inventory-debezium"),
		FilterSubject: env("SUBJECT", "dbz.>"),
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev change
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			log.Printf("%s: %v", m.Subject(), err)
			m.Term()
			return
		}
		key := m.Headers().Get("Pgjet-Key") // e.g. {"id":1}; absent for a truncate
		switch ev.Op {
		case "c", "u", "r":
			fmt.Printf("upsert %s.%s key=%s after=%s lsn=%d\n", ev.Source.Schema, ev.Source.Table, key, ev.After, ev.Source.LSN)
		case "d":
			fmt.Printf("delete %s.%s key=%s lsn=%d\n", ev.Source.Schema, ev.Source.Table, key, ev.Source.LSN)
		case "t":
			fmt.Printf("truncate %s.%s lsn=%d\n", ev.Source.Schema, ev.Source.Table, ev.Source.LSN)
		}
		m.Ack()
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
