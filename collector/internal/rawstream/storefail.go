package rawstream

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// jsInsufficientResources is JetStream's error code for a server (or an
// account) whose JetStream storage is used up (nats-server's
// JSInsufficientResourcesErr); nats.go has no name for it.
const jsInsufficientResources jetstream.ErrorCode = 10023

// errNoAck is an attempt whose ack did not come in time.
var errNoAck = errors.New("no ack")

// Explain says what a failed raw publish means to the operator: the raw
// stream full, the server's storage used up or failing, or no answer at
// all. stream names the raw stream ("" when unknown). The result wraps err.
func Explain(err error, stream string) error {
	name := stream
	if stream == "" {
		stream, name = "the raw stream", "<raw stream>"
	} else {
		stream = "raw stream " + stream
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsStreamStoreFailed && streamLimit(apiErr.Description):
		return fmt.Errorf("%s is full (%s) and discards new records: the collector holds the slot and Postgres keeps the WAL until it has room; "+
			"raise its limit (nats stream edit %s --max-bytes/--max-msgs) or lower its max age: %w", stream, apiErr.Description, name, err)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsInsufficientResources:
		return fmt.Errorf("the NATS server has no JetStream storage left (insufficient resources: its disk, its max_file_store or the account's limit): "+
			"free space or raise the limit; the collector holds the slot meanwhile: %w", err)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsStreamStoreFailed:
		return fmt.Errorf("the NATS server failed to store the record in %s (%s): a storage failure on the server, see its log: %w", stream, apiErr.Description, err)
	case errors.Is(err, errNoAck):
		return fmt.Errorf("%w: the server stored nothing and did not say why; JetStream answers nothing when it cannot write (a full disk: its log says \"Critical write error\"): check the NATS server's disk and log", err)
	}
	return err
}

// streamLimit reports whether a store failure is a limit of the stream
// with discard new (nats-server's ErrMaxBytes, ErrMaxMsgs,
// ErrMaxMsgsPerSubject).
func streamLimit(desc string) bool {
	for _, s := range []string{"maximum bytes exceeded", "maximum messages exceeded", "maximum messages per subject exceeded"} {
		if strings.Contains(desc, s) {
			return true
		}
	}
	return false
}

// failure is the last failed publish attempt while no later one succeeded.
type failure struct {
	err   error // explained
	since time.Time
}

// failState tracks the publisher's failing attempts for readiness.
type failState struct{ p atomic.Pointer[failure] }

func (f *failState) failed(err error, stream string) {
	since := time.Now()
	if old := f.p.Load(); old != nil {
		since = old.since
	}
	f.p.Store(&failure{err: Explain(err, stream), since: since})
}

func (f *failState) succeeded() {
	if f.p.Load() != nil {
		f.p.Store(nil)
	}
}

// Failing is the error of the last publish attempt, explained (see
// Explain), and since when attempts fail; nil while the last one
// succeeded. Meanwhile nothing is stored and the slot does not move.
func (p *Publisher) Failing() (time.Time, error) {
	f := p.fails.p.Load()
	if f == nil {
		return time.Time{}, nil
	}
	return f.since, f.err
}
