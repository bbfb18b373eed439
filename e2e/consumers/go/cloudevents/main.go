// Command cloudevents reads pgjet's CloudEvents with the CloudEvents Go SDK,
// in structured mode (the event as JSON in the body) or binary mode (ce-
// headers, the data as the body) alike, and prints each event's type,
// subject and data: {before, after, op} with a pipeline file's default
// `data: change`.
//
//	NATS_URL=nats://127.0.0.1:4222 STREAM=USERS SUBJECT='users.>' go run ./cloudevents
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

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
	cons, err := js.CreateOrUpdateConsumer(ctx, env("STREAM", "USERS"), jetstream.ConsumerConfig{
		Durable:       env("DURABLE", "users-cloudevents"),
		FilterSubject: env("SUBJECT", "users.>"),
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		// The SDK's NATS binding reads a *nats.Msg: the mode is told by the
		// ce-specversion header.
		msg := cejs.NewMessage(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		ev, err := binding.ToEvent(ctx, msg)
		if err == nil {
			err = ev.Validate()
		}
		if err != nil {
			log.Printf("%s: not a CloudEvent: %v", m.Subject(), err)
			m.Term()
			return
		}
		// ev.ID() is the event's Nats-Msg-Id: dedupe on it as in ./durable.
		fmt.Printf("%s %s lsn=%v %s\n", ev.Type(), ev.Subject(), ev.Extensions()["pgjetlsn"], ev.Data())
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
