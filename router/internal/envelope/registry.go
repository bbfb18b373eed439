package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Header is a message's headers in the shape NATS carries them (what
// nats.Header is): rendering does no I/O, so this package does not import
// NATS.
type Header map[string][]string

// HeaderOf returns the headers r gives e's message, in a map of their own.
func HeaderOf(r Renderer, e *Event) Header {
	h := Header{}
	r.AddHeader(h, e)
	return h
}

// Size is how many bytes h takes in a message: "name: value\r\n" each.
func (h Header) Size() int {
	n := 0
	for k, vs := range h {
		n += fieldSize(k, vs)
	}
	return n
}

// put sets key to vs and returns the bytes that takes in a message.
func (h Header) put(key string, vs []string) int {
	h[key] = vs
	return fieldSize(key, vs)
}

func fieldSize(key string, vs []string) int {
	n := 0
	for _, v := range vs {
		n += len(key) + len(v) + 4
	}
	return n
}

// Get returns the first value of key, "" when there is none.
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Renderer renders events in one envelope. A relay holds one per route;
// implementations need not be safe for concurrent use.
type Renderer interface {
	// Append appends the message body of e to b; on error b comes back
	// unchanged and the error says why (the caller dead-letters the change).
	Append(b []byte, e *Event) ([]byte, error)
	// AddHeader adds the headers of e's message, which Append rendered, to
	// h: the renderer's map, reused from message to message once published.
	// It returns the bytes they take in the message (their Size), which
	// count against the server's limit: the caller need not go over h.
	AddHeader(h Header, e *Event) int
	// Document appends e as one JSON document, for stdout, given body, its
	// message body.
	Document(b []byte, e *Event, body []byte) []byte
}

// Options is what a route gives its envelope.
type Options struct {
	// Encoding of message bodies: "json" (every envelope) or "msgpack".
	Encoding string
	// Settings are the envelope's own keys from the route's envelope
	// section (without "type"), as decoded from YAML or built from flags.
	Settings map[string]any
	// Transactions: the route publishes transaction begin and commit
	// events (its transactions key). Debezium's change events carry their
	// transaction block only then, as with provide.transaction.metadata.
	Transactions bool
}

// Factory builds a Renderer from a route's options, or says what is wrong
// with them (an *OptionError for a bad key).
type Factory func(o Options) (Renderer, error)

// registry holds every envelope by the name routes select it with. A new
// envelope is a file with its Factory and one line here.
var registry = map[string]Factory{
	"native":      newNative,
	"cloudevents": newCloudEvents,
	"debezium":    newDebezium,
}

// DefaultEnvelope is the envelope of a route that names none.
const DefaultEnvelope = "native"

// Names lists the registered envelopes, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New returns a Renderer of the envelope called name.
func New(name string, o Options) (Renderer, error) {
	f, ok := registry[name]
	if !ok {
		return nil, &OptionError{Key: "type", Err: fmt.Errorf("unknown envelope %q: use %s", name, strings.Join(Names(), ", "))}
	}
	if o.Encoding == "" {
		o.Encoding = "json"
	}
	return f(o)
}

// OptionError is a bad envelope setting; Key is its name in the route's
// envelope section (or "encoding").
type OptionError struct {
	Key string
	Err error
}

func (e *OptionError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// decodeSettings decodes s into v, a pointer to a struct with json tags,
// rejecting keys v has no field for.
func decodeSettings(s map[string]any, v any) error {
	if len(s) == 0 {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("envelope settings: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return &OptionError{Key: te.Field, Err: fmt.Errorf("must be a %s", te.Type)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			key := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return &OptionError{Key: key, Err: errors.New("unknown key")}
		}
		return fmt.Errorf("envelope settings: %w", err)
	}
	return nil
}

// jsonOnly rejects encodings other than JSON, for envelopes that have no
// other.
func jsonOnly(name string, o Options) error {
	if o.Encoding != "json" {
		return &OptionError{Key: "encoding", Err: fmt.Errorf("%q: the %s envelope is JSON only (msgpack: native, debezium)", o.Encoding, name)}
	}
	return nil
}

// splitter is implemented by envelopes that publish some changes as
// several events.
type splitter interface {
	Split(e *Event, dst []Event) []Event
}

// Split appends to dst the events the change e is published as, when r
// publishes it as several, and returns dst as it was otherwise (most
// changes: e is one event). The events are rendered in their order, each
// as any event (Append, Header, Tombstone), and take their position in the
// event ids as parts of e: <index>.0, <index>.1. The debezium envelope
// splits an update that changes the row's key into the delete of the old
// key and the create of the new one, as Debezium does.
func Split(r Renderer, e *Event, dst []Event) []Event {
	if m, ok := r.(*msgpackRenderer); ok {
		r = m.json
	}
	if s, ok := r.(splitter); ok {
		return s.Split(e, dst)
	}
	return dst
}

// tombstoner is implemented by envelopes that follow a delete with a
// tombstone.
type tombstoner interface {
	Tombstone(e *Event) (Header, bool)
	// Tombstones reports whether deletes get tombstones at all.
	Tombstones() bool
}

// MakesTombstones reports whether r follows deletes with tombstones.
func MakesTombstones(r Renderer) bool {
	if m, ok := r.(*msgpackRenderer); ok {
		r = m.json
	}
	t, ok := r.(tombstoner)
	return ok && t.Tombstones()
}

// Tombstone returns the headers of the tombstone that follows e, which r
// just rendered, and whether one does: an empty message on e's subject
// carrying e's key, for consumers that compact by key.
func Tombstone(r Renderer, e *Event) (Header, bool) {
	if m, ok := r.(*msgpackRenderer); ok {
		r = m.json
	}
	if t, ok := r.(tombstoner); ok {
		return t.Tombstone(e)
	}
	return nil, false
}
