// Package opcheck is what `pgjet-collector check|status` and `pgjet-router
// check|status` share: the report (one line per check, OK, WARN or FAIL,
// each problem with its fix) and NATS probes that find out what the
// connection may do without writing anything.
package opcheck

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Exit codes of the check commands.
const (
	ExitOK    = 0 // every check OK; warnings allowed
	ExitFail  = 1 // at least one FAIL
	ExitUsage = 2 // bad flags or pipeline file
)

// Run runs a check or status command: parse reads its flags (or pipeline
// file); run then works in a context cancelled by SIGINT/SIGTERM or after
// two minutes, so a server that never answers cannot hang it, and returns
// the exit code. Help exits 0; a usage error is one line on stderr and
// exit 2.
func Run(command string, parse func() error, run func(ctx context.Context) int) int {
	err := parse()
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", command, err)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return run(ctx)
}

// Report prints check results as they come.
type Report struct {
	w                 io.Writer
	oks, warns, fails int
}

// NewReport prints to w.
func NewReport(w io.Writer) *Report { return &Report{w: w} }

// OK reports a check that passed.
func (r *Report) OK(format string, args ...any) {
	r.oks++
	fmt.Fprintf(r.w, "OK   %s\n", fmt.Sprintf(format, args...))
}

// Warn reports something that works but deserves attention, and what to do.
func (r *Report) Warn(problem, fix string) {
	r.warns++
	r.line("WARN", problem, fix)
}

// Fail reports something that is broken or will break, and how to fix it.
func (r *Report) Fail(problem, fix string) {
	r.fails++
	r.line("FAIL", problem, fix)
}

func (r *Report) line(level, problem, fix string) {
	if fix == "" {
		fmt.Fprintf(r.w, "%s %s\n", level, problem)
		return
	}
	fmt.Fprintf(r.w, "%s %s: %s\n", level, problem, fix)
}

// Done prints the summary line and returns the exit code.
func (r *Report) Done() int {
	fmt.Fprintf(r.w, "%d OK, %d WARN, %d FAIL\n", r.oks, r.warns, r.fails)
	if r.fails > 0 {
		return ExitFail
	}
	return ExitOK
}

// Probe sends requests on a connection whose error handler it owns, so that
// a permissions violation (which the server reports asynchronously, without
// answering the request) is told apart from a slow or absent responder.
type Probe struct {
	NC         *nats.Conn
	Timeout    time.Duration
	mu         sync.Mutex
	violations []string
}

// NewProbe returns the probe and the option to connect with.
func NewProbe() (*Probe, nats.Option) {
	p := &Probe{Timeout: 3 * time.Second}
	return p, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			p.mu.Lock()
			p.violations = append(p.violations, err.Error())
			p.mu.Unlock()
		}
	})
}

// Outcome is what became of one request.
type Outcome int

const (
	Answered     Outcome = iota // a response came (possibly an API error)
	Denied                      // the server refused the publish: permissions
	NoResponders                // nobody listens on the subject
	NoAnswer                    // timeout without a permissions error
	InboxDenied                 // the client may not subscribe to its reply inbox
)

func (o Outcome) String() string {
	switch o {
	case Answered:
		return "answered"
	case Denied:
		return "permission denied"
	case NoResponders:
		return "no responders"
	case InboxDenied:
		return "reply inbox denied"
	}
	return "no answer"
}

// Request sends msg and waits for the response, a permissions violation
// naming its subject, or the timeout.
func (p *Probe) Request(ctx context.Context, msg *nats.Msg) (*nats.Msg, Outcome) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	type result struct {
		m   *nats.Msg
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := p.NC.RequestMsgWithContext(ctx, msg)
		done <- result{m, err}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case res := <-done:
			switch {
			case res.err == nil:
				return res.m, Answered
			case errors.Is(res.err, nats.ErrNoResponders):
				return nil, NoResponders
			}
			return nil, p.violated(msg.Subject, NoAnswer)
		case <-tick.C:
			if o := p.violated(msg.Subject, Answered); o != Answered {
				cancel()
				return nil, o
			}
		}
	}
}

// violated looks for a permissions violation about subject (or the inbox).
func (p *Probe) violated(subject string, otherwise Outcome) Outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, v := range p.violations {
		switch {
		case strings.Contains(v, `"`+subject+`"`):
			return Denied
		case strings.Contains(v, "Subscription") && strings.Contains(v, "_INBOX"):
			return InboxDenied
		}
	}
	return otherwise
}

// ErrCodeStreamNotMatch is JetStream's answer to a publish whose
// Nats-Expected-Stream header names another stream than the one that
// captures its subject (nats-server's JSStreamNotMatchErr). nats.go
// declares the codes it acts on itself, and not this one.
const ErrCodeStreamNotMatch jetstream.ErrorCode = 10060

// API requests $JS.API.<subject> with req (JSON, nil for none) and decodes
// the response into resp. A nil *jetstream.APIError and Answered mean success.
func (p *Probe) API(ctx context.Context, subject string, req, resp any) (*jetstream.APIError, Outcome, error) {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return nil, Answered, err
		}
	}
	m, o := p.Request(ctx, &nats.Msg{Subject: jetstream.DefaultAPIPrefix + subject, Data: body})
	if o != Answered {
		return nil, o, nil
	}
	var e struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return nil, Answered, fmt.Errorf("$JS.API.%s: bad response: %w", subject, err)
	}
	if e.Error != nil {
		return e.Error, Answered, nil
	}
	if resp != nil {
		if err := json.Unmarshal(m.Data, resp); err != nil {
			return nil, Answered, fmt.Errorf("$JS.API.%s: bad response: %w", subject, err)
		}
	}
	return nil, Answered, nil
}

// StreamInfo is $JS.API.STREAM.INFO: the info, nil when the stream does not
// exist (nf), or what else happened.
func (p *Probe) StreamInfo(ctx context.Context, name string) (info *jetstream.StreamInfo, notFound bool, o Outcome, err error) {
	info = &jetstream.StreamInfo{}
	apiErr, o, err := p.API(ctx, "STREAM.INFO."+name, nil, info)
	switch {
	case err != nil || o != Answered:
		return nil, false, o, err
	case apiErr != nil && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound:
		return nil, true, o, nil
	case apiErr != nil:
		return nil, false, o, apiErr
	}
	return info, false, o, nil
}

// ConsumerInfo is $JS.API.CONSUMER.INFO, like StreamInfo.
func (p *Probe) ConsumerInfo(ctx context.Context, stream, name string) (info *jetstream.ConsumerInfo, notFound bool, o Outcome, err error) {
	info = &jetstream.ConsumerInfo{}
	apiErr, o, err := p.API(ctx, "CONSUMER.INFO."+stream+"."+name, nil, info)
	switch {
	case err != nil || o != Answered:
		return nil, false, o, err
	case apiErr != nil && (apiErr.ErrorCode == jetstream.JSErrCodeConsumerNotFound || apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound):
		return nil, true, o, nil
	case apiErr != nil:
		return nil, false, o, apiErr
	}
	return info, false, o, nil
}

// MayCreateStream asks the server to create stream name with a body naming
// another stream: the server refuses that request without creating
// anything, and its answering at all shows the publish was permitted.
func (p *Probe) MayCreateStream(ctx context.Context, name string) Outcome {
	_, o, _ := p.API(ctx, "STREAM.CREATE."+name, map[string]any{"name": name + "_PGJET_CHECK_MISMATCH"}, nil)
	return o
}

// MayCreateConsumer is MayCreateStream for a durable with a filter subject
// (the subject nats.go uses): the body names another durable.
func (p *Probe) MayCreateConsumer(ctx context.Context, stream, durable, filter string) Outcome {
	req := map[string]any{"stream_name": stream, "config": map[string]any{"durable_name": durable + "_PGJET_CHECK_MISMATCH", "filter_subject": filter}}
	_, o, _ := p.API(ctx, "CONSUMER.CREATE."+stream+"."+durable+"."+filter, req, nil)
	return o
}

// MayPull sends a malformed pull request to a durable: the server answers
// 400 Bad Request and delivers nothing, so the consumer's state is left as
// it was. NoResponders means the durable does not exist.
func (p *Probe) MayPull(ctx context.Context, stream, durable string) Outcome {
	_, o := p.Request(ctx, &nats.Msg{Subject: jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + stream + "." + durable, Data: []byte("{")})
	return o
}

// MayPublish publishes an empty message to subject with a
// Nats-Expected-Stream header naming no stream: a stream capturing the
// subject refuses it before storing anything (JetStream error 10060), which
// shows both that the publish was permitted and that a stream captures the
// subject. NoResponders: permitted, but no stream captures it.
func (p *Probe) MayPublish(ctx context.Context, subject string) (Outcome, *jetstream.APIError) {
	msg := nats.NewMsg(subject)
	msg.Header.Set(jetstream.ExpectedStreamHeader, "PGJET_CHECK_NO_SUCH_STREAM")
	m, o := p.Request(ctx, msg)
	if o != Answered {
		return o, nil
	}
	var r struct {
		Error *jetstream.APIError `json:"error"`
	}
	if json.Unmarshal(m.Data, &r) != nil || r.Error == nil {
		// Stored after all: must never happen (the header is checked first).
		return o, &jetstream.APIError{Description: "the server stored the probe message instead of refusing it"}
	}
	return o, r.Error
}

// Concrete turns a subject pattern into a subject it matches, for probes.
func Concrete(pattern string) string {
	toks := strings.Split(pattern, ".")
	for i, t := range toks {
		if t == "*" || t == ">" {
			toks[i] = "pgjet_check"
		}
	}
	return strings.Join(toks, ".")
}

// Permission describes a denied or unanswered probe for a report line.
func Permission(o Outcome, subject string) string {
	switch o {
	case Denied:
		return fmt.Sprintf("permission denied to publish to %s", subject)
	case InboxDenied:
		return "permission denied to subscribe to the reply inbox (_INBOX.>)"
	case NoResponders:
		return fmt.Sprintf("no responder on %s", subject)
	}
	return fmt.Sprintf("no answer on %s within the timeout (a server that drops a denied publish without telling the client looks the same)", subject)
}

// Ago formats how long ago t was.
func Ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return Dur(time.Since(t)) + " ago"
}

// Dur formats a duration to a readable precision.
func Dur(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + Dur(-d)
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < 48*time.Hour:
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("%.1fd", d.Hours()/24)
}

// Bytes formats a byte count.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit*unit || f <= -unit*unit {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f/unit, "KMGTPE"[i])
}

// Storage describes a stream's storage settings in one phrase.
func Storage(c jetstream.StreamConfig) string {
	s := fmt.Sprintf("R%d, %s storage, duplicate window %s", max(c.Replicas, 1), c.Storage, Dur(c.Duplicates))
	if c.MaxAge > 0 {
		s += ", max age " + Dur(c.MaxAge)
	} else {
		s += ", no max age"
	}
	if c.PersistMode == jetstream.AsyncPersistMode {
		s += ", async persistence"
	}
	return s
}

// DurableLine is one durable's state on the raw stream.
func DurableLine(ci *jetstream.ConsumerInfo, firstSeq uint64) string {
	b := &strings.Builder{}
	fmt.Fprintf(b, "%s: pending %d ack_pending %d redelivered %d waiting %d", ci.Name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting)
	last := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return Ago(*t)
	}
	fmt.Fprintf(b, " last_delivered seq %d %s ack_floor seq %d %s", ci.Delivered.Stream, last(ci.Delivered.Last), ci.AckFloor.Stream, last(ci.AckFloor.Last))
	if next := ci.AckFloor.Stream + 1; firstSeq > next {
		fmt.Fprintf(b, " GAP: records %d-%d expired unread", next, firstSeq-1)
	}
	return b.String()
}

// Note prints a line that is no check: what could not be checked, and why.
func (r *Report) Note(format string, args ...any) {
	fmt.Fprintf(r.w, "NOTE %s\n", fmt.Sprintf(format, args...))
}
