package embedded

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// A raw message with a single row of nearly MaxPayload must be storable.
func TestStoresLargeMessages(t *testing.T) {
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(Config{Dir: t.TempDir(), Listen: "127.0.0.1:" + itoa(port)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.big", make([]byte, MaxPayload-64<<10)); err != nil {
		t.Fatalf("publish a message of max payload: %v", err)
	}
}

func itoa(n int) string {
	b := []byte{}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// A start with the defaults warns of nothing: the server's advice against
// the chosen MaxPayload is logged at debug, not as a warning at every start.
func TestStartWarnsOfNothing(t *testing.T) {
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	s, err := Start(Config{Dir: t.TempDir(), Listen: "127.0.0.1:" + itoa(port)}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	if !strings.Contains(logs.String(), "Maximum payloads over") {
		t.Fatalf("the server's advice on MaxPayload is not in the debug log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a start with the defaults warned:\n%s", logs.String())
	}
}
