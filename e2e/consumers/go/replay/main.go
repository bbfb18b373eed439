// Command replay reads a stream from a sequence or a point in time with an
// ordered consumer (nothing kept on the server, in stream order, gaps
// repaired by the client) and exits once it has read what the stream held
// when it started: a one-off read, e.g. to rebuild a cache.
//
//	go run ./replay -from-seq 1
//	go run ./replay -from-time 2026-12-01T00:00:00Z
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	fromSeq := flag.Uint64("from-seq", 0, "first stream sequence to read")
	fromTime := flag.String("from-time", "", "read what was stored at or after this time (RFC 3339)")
	stream := flag.String("stream", "PGJET_EVENTS", "stream to read")
	subject := flag.String("subject", "postgres.>", "subjects to read")
	flag.Parse()
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{*subject}}
	switch {
	case *fromTime != "":
		t, err := time.Parse(time.RFC3339, *fromTime)
		if err != nil {
			log.Fatalf("-from-time: %v", err)
		}
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case *fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, *fromSeq
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	url := nats.DefaultURL
	if v := os.Getenv("NATS_URL"); v != "" {
		url = v
	}
	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cons, err := js.OrderedConsumer(ctx, *stream, cfg)
	if err != nil {
		log.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if info.NumPending == 0 {
		return // nothing stored from there on
	}
	it, err := cons.Messages()
	if err != nil {
		log.Fatal(err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if errors.Is(err, context.Canceled) {
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		md, err := m.Metadata()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s %s\n", md.Sequence.Stream, md.Timestamp.UTC().Format(time.RFC3339Nano), m.Subject())
		if md.NumPending == 0 {
			return // caught up with the stream as it was
		}
	}
}
