// Package plan turns the router's configuration (a pipeline file, flags
// applied: package cli) into its routes, a Plan, and runs them (run.go,
// replay.go): one relay per route, each with
// its own durable consumer on the raw stream, so a slow or unreachable
// route holds back only itself and every route has its own start position.
// A route that fails for good stops them all: the router exits, loudly.
package plan

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/relay"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/router/internal/stdout"
	"github.com/pgjet/pgjet/shared/natsconn"
	"github.com/pgjet/pgjet/shared/pipeline"
)

// Route is one route to run.
type Route struct {
	ID string
	// Conn is the output's NATS connection; unused for a route that only
	// prints (Relay.Stream "").
	Conn natsconn.Config
	// Relay is the route's relay configuration but for Log and Stdout,
	// which Run sets.
	Relay relay.Config
	// Stdout prints the route's events: for a stdout sink, instead of
	// publishing them; for a NATS route, once stored (--stdout).
	Stdout stdout.Format
}

// Plan is everything a router runs.
type Plan struct {
	Raw       natsconn.Config // the raw stream's connection
	RawStream string
	Routes    []Route
	// Metrics, when set (--metrics), get the routes' figures and say
	// whether the router is ready.
	Metrics *Metrics
}

// FromFile builds the routes of f's sinks. Problems go to errs, each with
// the path of the key it is about; warn receives the routes' runtime
// warnings (column rules naming missing columns).
func FromFile(f *pipeline.File, errs *pipeline.Errors, warn func(msg string, args ...any)) *Plan {
	rawConn, _ := f.RawConn()
	p := &Plan{Raw: rawConn.NATS(), RawStream: f.RawStream.Name}
	if p.Raw.URL == "" {
		errs.Add("spec.raw_stream.url", "the router needs the raw stream's server: give spec.raw_stream.url (or embedded.listen), a nats sink whose server holds it, or --nats")
	}
	for i := range f.Sinks {
		s := &f.Sinks[i]
		rc := route.Config{
			Name:               s.ID,
			Prefix:             s.Prefix,
			Subject:            s.Subject,
			MessageSubject:     s.MessageSubject,
			DeadLetterSubject:  s.DeadLetterSubject,
			Include:            s.Include,
			Exclude:            s.Exclude,
			Ops:                s.Operations,
			MessagePrefixes:    s.MessagePrefixes,
			HashKey:            s.HashKeyBytes,
			Warn:               warn,
			Transactions:       s.Transactions,
			TransactionSubject: s.TransactionSubject,
			Relations:          s.Relations,
			RelationSubject:    s.RelationSubject,
			Group:              s.Group,
			GroupSubject:       s.GroupSubject,
		}
		for _, c := range s.Columns {
			rc.Columns = append(rc.Columns, route.ColumnRule{Table: c.Table, Drop: c.Drop, Mask: c.Mask, Hash: c.Hash})
		}
		// Checked by the decoder: an error is impossible here.
		part, parts, _ := pipeline.ParsePartition(s.Partition)
		rc.Partition, rc.Partitions = part, parts
		durableName := PartitionDurable(s.Durable, part, parts)
		rt, err := route.New(rc)
		if err != nil {
			addRouteErrors(errs, s.Path, err)
		}
		env, err := envelope.New(s.Envelope.Type, envelope.Options{Encoding: s.Encoding, Settings: s.Envelope.Settings, Transactions: s.Transactions})
		if err != nil {
			addEnvelopeError(errs, s, err)
		}
		for _, m := range []struct {
			on   bool
			key  string
			kind envelope.Kind
		}{{s.Transactions, "transactions", envelope.KindBegin}, {s.Relations, "relations", envelope.KindRelation}} {
			if m.on && env != nil && !envelope.Renders(s.Envelope.Type, m.kind) {
				errs.Add(s.Path+"."+m.key, "the %s envelope has no %s events", s.Envelope.Type, strings.TrimSuffix(m.key, "s"))
			}
		}
		if s.Group && env != nil {
			if s.Encoding != "json" {
				errs.Add(s.Path+".group", "groups are JSON: use encoding json with group: transaction")
			} else if ce, ok := env.(*envelope.CloudEvents); ok {
				if _, batch := ce.Batch(); !batch {
					group, mode := s.Path+".group", s.Path+".envelope.mode"
					if errs.Flag(group) != "" || errs.Flag(mode) != "" {
						// Two keys, one at least from a flag: said as the user gave them.
						errs.Add("", "%s needs %s: binary CloudEvents have no batch format", named(errs, group, "group: transaction", " transaction"),
							named(errs, mode, "envelope mode structured", " structured"))
					} else {
						errs.Add(group, "binary CloudEvents have no batch format: use mode structured with group: transaction")
					}
				}
			}
		}
		r := Route{
			ID: s.ID,
			Relay: relay.Config{
				RawStream:      f.RawStream.Name,
				Durable:        durableName,
				StartNew:       s.StartPosition == "latest",
				Route:          rt,
				Envelope:       env,
				PublishTimeout: s.SendTimeout,
				AckWait:        s.BatchTimeout,
				StandbyTTL:     standbyTTL(s),
			},
		}
		switch s.Type {
		case "stdout":
			format, err := stdout.ParseFormat(s.Format)
			if err != nil {
				errs.Add(s.Path+".format", "%v", err)
			}
			r.Stdout = format
		default:
			r.Conn = s.Conn.NATS()
			r.Relay.Stream = s.Stream.Name
			r.Relay.Duplicates = s.Stream.DuplicateWindow
			r.Relay.PersistAsync = s.Stream.Persist == "async"
			r.Relay.Output = relay.StreamConfig{
				Subjects: s.Stream.Subjects,
				Replicas: s.Stream.Replicas,
				Memory:   s.Stream.Storage == "memory",
				MaxAge:   s.Stream.MaxAge,
				MaxBytes: s.Stream.MaxBytes,
				MaxMsgs:  s.Stream.MaxMsgs,
			}
			if r.Relay.Duplicates == 0 {
				r.Relay.Duplicates = relay.DefaultDuplicates
			}
		}
		if rt != nil {
			checkStreamSubjects(errs, s, rt)
		}
		p.Routes = append(p.Routes, r)
	}
	checkOverlaps(errs, f, p)
	return p
}

// checkStreamSubjects: a stream the route creates must capture every
// subject it publishes to, or each publish would fail at run time.
func checkStreamSubjects(errs *pipeline.Errors, s *pipeline.Sink, rt *route.Route) {
	if len(s.Stream.Subjects) == 0 {
		return
	}
	for _, want := range rt.Subjects() {
		covered := false
		for _, have := range s.Stream.Subjects {
			if route.Covers(have, want) {
				covered = true
				break
			}
		}
		if !covered {
			errs.Add(s.Path+".stream.subjects", "does not capture %s, a subject of this route: add it (or a wildcard covering it)", want)
		}
	}
}

// checkOverlaps: two streams on one server cannot capture the same subject
// (the server refuses the second), so two routes to different streams of
// one server must not publish to overlapping subjects.
func checkOverlaps(errs *pipeline.Errors, f *pipeline.File, p *Plan) {
	for j := range p.Routes {
	pairs:
		for i := 0; i < j; i++ {
			a, b := &p.Routes[i], &p.Routes[j]
			if a.Relay.Stream == "" || b.Relay.Stream == "" || a.Relay.Route == nil || b.Relay.Route == nil ||
				a.Relay.Stream == b.Relay.Stream || a.Conn.URL != b.Conn.URL {
				continue
			}
			for _, x := range a.Relay.Route.Subjects() {
				for _, y := range b.Relay.Route.Subjects() {
					if route.Overlaps(x, y) {
						errs.Add(f.Sinks[j].Path+".subject", "%s overlaps %s of %s (stream %s): two streams on one server cannot capture the same subject",
							y, x, f.Sinks[i].Path, a.Relay.Stream)
						continue pairs
					}
				}
			}
		}
	}
}

// addRouteErrors adds route.New's errors, each at its key's path.
func addRouteErrors(errs *pipeline.Errors, path string, err error) {
	for _, e := range unjoin(err) {
		var fe *route.FieldError
		if errors.As(e, &fe) {
			errs.Add(path+"."+fe.Field, "%v", fe.Err)
		} else {
			errs.Add(path, "%v", e)
		}
	}
}

func addEnvelopeError(errs *pipeline.Errors, s *pipeline.Sink, err error) {
	var oe *envelope.OptionError
	switch {
	case errors.As(err, &oe) && oe.Key == "type":
		errs.AddValue(s.Path+".envelope.type", "unknown envelope", strconv.Quote(s.Envelope.Type), "use "+strings.Join(envelope.Names(), ", "))
	case errors.As(err, &oe) && oe.Key == "encoding":
		errs.Add(s.Path+".encoding", "%v", oe.Err)
	case errors.As(err, &oe):
		errs.Add(s.Path+".envelope."+oe.Key, "%v", oe.Err)
	default:
		errs.Add(s.Path+".envelope", "%v", err)
	}
}

// named is how a problem names the key at path: as the flag that gave it
// (with flagValue), or as the file writes it.
func named(errs *pipeline.Errors, path, file, flagValue string) string {
	if f := errs.Flag(path); f != "" {
		return f + flagValue
	}
	return file
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Describe is a route's one-line summary for --check-config and logs.
func (r *Route) Describe() string {
	var subjects []string
	if r.Relay.Route != nil {
		subjects = r.Relay.Route.Subjects()
	}
	if r.Relay.Stream == "" {
		return fmt.Sprintf("route %s: stdout (%s), durable %s", r.ID, formatName(r.Stdout), r.Relay.Durable)
	}
	return fmt.Sprintf("route %s: stream %s %v, durable %s", r.ID, r.Relay.Stream, subjects, r.Relay.Durable)
}

func formatName(f stdout.Format) string {
	switch f {
	case stdout.JSON:
		return "json"
	case stdout.JSONPretty:
		return "json-pretty"
	case stdout.Text:
		return "text"
	}
	return "off"
}

// standbyTTL is a sink's relay.Config.StandbyTTL: 0 unless its routers are
// replicas.
func standbyTTL(s *pipeline.Sink) time.Duration {
	switch {
	case !s.Standby:
		return 0
	case s.StandbyTTL > 0:
		return s.StandbyTTL
	}
	return relay.DefaultStandbyTTL
}

// PartitionDurable is the durable of a route's share: each partition has
// its own consumer on the raw stream.
func PartitionDurable(durable string, part, parts int) string {
	if parts <= 1 {
		return durable
	}
	return fmt.Sprintf("%s-p%dof%d", durable, part, parts)
}
