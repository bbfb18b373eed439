package relay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/natstest"
	"github.com/pgjet/pgjet/shared/tracing/tracingtest"
	"github.com/pgjet/pgjet/shared/wire"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkRelay relays raw records of 500 single-row inserts each and
// reports events per second end to end (publish acks and raw acks
// included). The test server fsyncs every write (sync always), so the file
// case measures the disk as much as the relay.
func BenchmarkRelay(b *testing.B) {
	for _, storage := range []jetstream.StorageType{jetstream.MemoryStorage, jetstream.FileStorage} {
		b.Run("output="+storage.String(), func(b *testing.B) { benchRelay(b, storage, nil, nil) })
	}
	// Tracing on: a span per raw record, exported over OTLP/HTTP, and a
	// traceparent header on every event.
	b.Run("output=Memory,tracing", func(b *testing.B) {
		benchRelay(b, jetstream.MemoryStorage, nil, tracingtest.ForBenchmark(b, "pgjet-router").Tracer)
	})
}

// BenchmarkRelayEnvelopes is BenchmarkRelay's memory case in each envelope
// (the system benchmark's variants), for profiles of what an envelope costs
// beyond rendering: bigger messages and more headers through the client.
func BenchmarkRelayEnvelopes(b *testing.B) {
	for _, v := range []struct {
		name, envelope string
		settings       map[string]any
	}{
		{"native", "native", nil},
		{"cloudevents", "cloudevents", map[string]any{"data": "native"}},
		{"cloudevents-change", "cloudevents", nil},
		{"debezium", "debezium", nil},
	} {
		b.Run(v.name, func(b *testing.B) {
			env, err := envelope.New(v.envelope, envelope.Options{Settings: v.settings})
			if err != nil {
				b.Fatal(err)
			}
			benchRelayWith(b, jetstream.MemoryStorage, nil, nil, env)
		})
	}
}

// benchRelay times a relay over 40 records of 500 inserts into a fresh
// output of storage, b.N times; latency, when set, observes its publishes;
// tracer, when set, traces its records.
func benchRelay(b *testing.B, storage jetstream.StorageType, latency Observer, tracer trace.Tracer) {
	benchRelayWith(b, storage, latency, tracer, nil)
}

func benchRelayWith(b *testing.B, storage jetstream.StorageType, latency Observer, tracer trace.Tracer, env envelope.Renderer) {
	const records, perRecord = 40, 500
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		js := benchEnv(b, storage, records, perRecord)
		r, err := New(js, Config{RawStream: rawStream, Durable: durable, Stream: outStream, Prefix: "postgres", Log: discardLogger(),
			PublishLatency: latency, Tracer: tracer, Envelope: env})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- r.Run(ctx) }()
		for r.Stats().RawRecords < records {
			time.Sleep(time.Millisecond) // polling, not waiting for time to pass
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(records*perRecord*b.N)/total.Seconds(), "events/s")
}

func benchEnv(b *testing.B, storage jetstream.StorageType, records, perRecord int) jetstream.JetStream {
	_, _, js := natstest.Start(b)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: rawStream, Subjects: []string{"pgjet.raw.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		b.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: outStream, Subjects: []string{"postgres.>"}, Storage: storage, Duplicates: 10 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	for r := 0; r < records; r++ {
		tx := wire.Tx{Xid: uint32(r), CommitLSN: uint64(r+1) << 16, CommitTime: time.Now().UnixMicro(), Final: true}
		for i := 0; i < perRecord; i++ {
			id := strconv.Itoa(r*perRecord + i)
			tx.Changes = append(tx.Changes, wire.Change{Op: wire.OpInsert, New: []wire.Value{text(id), text("user number " + id)}})
		}
		data, err := wire.Marshal(&wire.Message{Source: srcTest, Relations: []wire.Relation{users}, Txs: []wire.Tx{tx}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.Publish(ctx, "pgjet.raw.test", data); err != nil {
			b.Fatal(fmt.Errorf("publish raw: %w", err))
		}
	}
	return js
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkPublishCeiling is the ceiling BenchmarkRelay compares against:
// bare async publishes of same-sized events with ids, 512 in flight, into the
// same kind of output stream.
func BenchmarkPublishCeiling(b *testing.B) {
	for _, storage := range []jetstream.StorageType{jetstream.MemoryStorage, jetstream.FileStorage} {
		b.Run("output="+storage.String(), func(b *testing.B) {
			const n = 20000
			var total time.Duration
			data := []byte(`{"op":"insert","source":"test","schema":"public","table":"users","lsn":"0/10000","xid":1,"commit_time":"2026-11-23T09:00:00.123456Z","index":1,"key":{"id":1},"before":null,"after":{"id":1,"name":"user number 1"}}`)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				js := benchEnv(b, storage, 0, 0)
				b.StartTimer()
				start := time.Now()
				var futs []jetstream.PubAckFuture
				for j := 0; j < n; j++ {
					if len(futs) >= window {
						<-futs[0].Ok()
						futs = futs[1:]
					}
					m := &nats.Msg{Subject: "postgres.public.users.insert", Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{strconv.Itoa(j)}}}
					f, err := js.PublishMsgAsync(m)
					if err != nil {
						b.Fatal(err)
					}
					futs = append(futs, f)
				}
				for _, f := range futs {
					<-f.Ok()
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
		})
	}
}
