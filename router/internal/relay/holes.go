package relay

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/render"
)

// A relay reads every raw record in stream order, so a record it cannot
// read stops it, naming the record, the cause and the way past:
//
//   - expired: gone from the head of the stream (its limits: max age, max
//     messages or bytes; or a purge) before the route read it;
//   - deleted: gone from the middle of the stream (the records around it are
//     there): an operator deleted it;
//   - undecodable: there, but not a raw record this build can read (written
//     by a newer pgjet, or not by pgjet at all).
//
// An operator who knows what the hole held goes past it explicitly: the
// relay accepts the gap of the sequences named by --accept-gap, or sends
// an undecodable record named by --dead-letter-raw to the dead-letter
// subject with its bytes, logging either, and counting it.

// ErrGap is matched by a *GapError.
var ErrGap = errors.New("raw records missing")

// GapError reports raw records that disappeared before the relay read
// them. Their changes can never reach the output, so the relay stops
// instead of silently going on.
type GapError struct {
	Stream string
	// Reader is who missed them: "consumer <durable>", or "the replay".
	Reader      string
	First, Last uint64 // missing stream sequences, inclusive
	// Deleted: the records after and before them are in the stream, so they
	// were deleted; else they are gone from its head (Limits: the stream's
	// limits that remove old records, "" for none).
	Deleted bool
	Limits  string
}

func (e *GapError) Error() string {
	n := e.Last - e.First + 1
	var what string
	switch {
	case e.Deleted:
		what = "were deleted from the stream (the records around them are there: an operator deleted them)"
	case e.Limits != "":
		what = "are gone from the head of the stream (expired by its limits, " + e.Limits + "; or purged or deleted)"
	default:
		what = "are gone from the head of the stream (it has no limits that expire records: purged or deleted)"
	}
	return fmt.Sprintf("raw stream %s: records %s (%d) %s before %s read them: their changes cannot reach the output, so the router stops. "+
		"Rebuild the output from what the stream holds (pgjet-router replay), or go on without them, logged: restart with --accept-gap %s",
		e.Stream, e.Range(), n, what, e.Reader, e.Range())
}

func (e *GapError) Is(target error) bool { return target == ErrGap }

// Range is the missing sequences as --accept-gap takes them.
func (e *GapError) Range() string { return SeqRange{e.First, e.Last}.String() }

// UndecodableError reports a raw record the relay cannot decode.
type UndecodableError struct {
	Stream, Subject string
	Seq             uint64
	Err             error
}

func (e *UndecodableError) Error() string {
	return fmt.Sprintf("raw record %d of stream %s (subject %s) cannot be decoded: %v: the router stops rather than skip changes. "+
		"If a newer pgjet wrote it, upgrade the router; if it is not a pgjet record, restart with --dead-letter-raw %d to send its bytes to the dead-letter subject and go on (logged)",
		e.Seq, e.Stream, e.Subject, e.Err, e.Seq)
}

func (e *UndecodableError) Unwrap() error { return e.Err }

// SeqRange is raw stream sequences First to Last, inclusive.
type SeqRange struct{ First, Last uint64 }

func (s SeqRange) String() string {
	if s.First == s.Last {
		return strconv.FormatUint(s.First, 10)
	}
	return fmt.Sprintf("%d-%d", s.First, s.Last)
}

// SeqRanges are the sequences an operator named (--accept-gap,
// --dead-letter-raw).
type SeqRanges []SeqRange

// ParseSeqRanges reads "5", "5-7" or a comma-separated list of them.
func ParseSeqRanges(s string) (SeqRanges, error) {
	var out SeqRanges
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		first, err1 := strconv.ParseUint(a, 10, 64)
		last, err2 := first, error(nil)
		if isRange {
			last, err2 = strconv.ParseUint(b, 10, 64)
		}
		if err1 != nil || err2 != nil || first == 0 || last < first {
			return nil, fmt.Errorf("%q: use raw stream sequences, N or FIRST-LAST, comma-separated (e.g. 5 or 5-7,12)", part)
		}
		out = append(out, SeqRange{first, last})
	}
	return out, nil
}

// Covers reports whether every sequence of r is among s.
func (s SeqRanges) Covers(r SeqRange) bool {
	return slices.ContainsFunc(s, func(x SeqRange) bool { return x.First <= r.First && r.Last <= x.Last })
}

func (s SeqRanges) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// gap describes the missing records first to last.
func (r *Relay) gap(ctx context.Context, reader string, first, last uint64) *GapError {
	e := &GapError{Stream: r.cfg.RawStream, Reader: reader, First: first, Last: last}
	info, err := r.raw.Info(ctx)
	if err != nil {
		info = r.raw.CachedInfo()
	}
	e.Deleted = first >= info.State.FirstSeq
	c := info.Config
	var limits []string
	if c.MaxAge > 0 {
		limits = append(limits, "max_age "+c.MaxAge.Round(time.Second).String())
	}
	if c.MaxMsgs > 0 {
		limits = append(limits, fmt.Sprintf("max_msgs %d", c.MaxMsgs))
	}
	if c.MaxBytes > 0 {
		limits = append(limits, fmt.Sprintf("max_bytes %d", c.MaxBytes))
	}
	e.Limits = strings.Join(limits, ", ")
	return e
}

// passGap goes past a gap the operator accepted (--accept-gap), logging
// it, or returns it.
func (r *Relay) passGap(gap *GapError) error {
	rg := SeqRange{gap.First, gap.Last}
	if !r.cfg.AcceptGaps.Covers(rg) {
		return gap
	}
	r.stats.gapRecords.Add(gap.Last - gap.First + 1)
	r.log.Warn("going past missing raw records, as --accept-gap says: their changes will not reach the output",
		"raw_stream", gap.Stream, "records", rg.String(), "deleted", gap.Deleted, "limits", gap.Limits, "accept_gap", r.cfg.AcceptGaps.String())
	return nil
}

// reader names the relay's consumer in errors.
func (r *Relay) reader() string {
	if r.cfg.Replay != nil {
		return "the replay"
	}
	return "consumer " + r.cfg.Durable
}

// headGap checks that the stream still holds the record at next, the
// first the relay needs; an accepted gap before the stream's first record
// returns that record's sequence instead.
func (r *Relay) headGap(ctx context.Context, next uint64) (uint64, error) {
	info, err := r.raw.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("raw stream %s info: %w", r.cfg.RawStream, err)
	}
	first := info.State.FirstSeq
	if first <= next {
		return next, nil
	}
	if err := r.passGap(r.gap(ctx, r.reader(), next, first-1)); err != nil {
		return 0, err
	}
	return first, nil
}

// missing explains why record seq came when r.seen+1 was due: the records
// in between are gone from the stream (a gap: stop, unless accepted), or
// one was delivered and lost with a dropped connection while later ones
// were delivered (read again from the ack floor). On an accepted gap it
// returns nil, with seq next.
func (r *Relay) missing(ctx context.Context, seq uint64) error {
	gctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	_, err := r.raw.GetMsg(gctx, r.seen+1)
	switch {
	case err == nil:
		return errLostDelivery
	case errors.Is(err, jetstream.ErrMsgNotFound):
		if err := r.passGap(r.gap(ctx, r.reader(), r.seen+1, seq-1)); err != nil {
			return err
		}
		r.seen = seq - 1
		return nil
	default:
		return fmt.Errorf("raw record %d came after %d; reading %d: %w", seq, r.seen, r.seen+1, err)
	}
}

// undecodable stops the relay at rec, a raw record it cannot decode (err),
// or, when the operator named it (--dead-letter-raw), makes it a record
// whose one message is its dead letter, with its bytes.
func (r *Relay) undecodable(rec *record, err error) (*record, error) {
	msg := rec.msg
	if !r.cfg.DeadLetterRaw.Covers(SeqRange{rec.seq, rec.seq}) {
		return nil, &UndecodableError{Stream: r.cfg.RawStream, Subject: msg.Subject(), Seq: rec.seq, Err: err}
	}
	rec.b = r.batches.get()
	r.render.RawDeadLetter(&rec.b.Batch, render.RawRecord{Stream: r.cfg.RawStream, Subject: msg.Subject(), Seq: rec.seq, Data: msg.Data()}, err)
	rec.b.wrap()
	r.seen = rec.seq
	if len(rec.b.Msgs) == 0 {
		r.log.Info("raw record cannot be decoded; the output holds its dead letter already", "raw_seq", rec.seq, "subject", msg.Subject())
		return rec, nil
	}
	r.stats.rawDead.Add(1)
	r.log.Warn("raw record cannot be decoded; sent with its bytes to the dead-letter subject, as --dead-letter-raw says", "err", err,
		"raw_seq", rec.seq, "subject", msg.Subject(), "dead_letter_subject", r.route.DeadLetter())
	return rec, nil
}

// StoppedAtKey is the durable consumer's metadata key that keeps the raw
// record a relay stopped at for a hole. JetStream moves a consumer's ack
// floor over records deleted after it delivered later ones, so without it
// a restart would pass a hole the relay stopped at, silently.
const StoppedAtKey = "pgjet_stopped_at"

// markStopped records in the consumer where the relay stopped, when err is
// a hole.
func (r *Relay) markStopped(ctx context.Context, err error) {
	var at uint64
	var gap *GapError
	var undecodable *UndecodableError
	switch {
	case errors.As(err, &gap):
		at = gap.First
	case errors.As(err, &undecodable):
		at = undecodable.Seq
	}
	if at == 0 || r.cfg.Replay != nil || r.raw == nil || r.consumer.Durable == "" {
		return
	}
	r.setStopped(ctx, strconv.FormatUint(at, 10))
}

// clearStopped forgets the hole the relay is past now.
func (r *Relay) clearStopped(ctx context.Context) {
	r.stopped = 0
	r.setStopped(ctx, "")
}

func (r *Relay) setStopped(ctx context.Context, v string) {
	cc := r.consumer
	cc.Metadata = maps.Clone(cc.Metadata)
	if cc.Metadata == nil {
		cc.Metadata = map[string]string{}
	}
	if v == "" {
		delete(cc.Metadata, StoppedAtKey)
	} else {
		cc.Metadata[StoppedAtKey] = v
	}
	// The caller's context may be ending (the relay stops): a short one of
	// its own.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := r.raw.UpdateConsumer(uctx, cc); err != nil {
		r.log.Warn("cannot record in the raw consumer where the relay stopped", "err", err, "durable", cc.Durable)
		return
	}
	r.consumer = cc
}

// stoppedGap checks, at start, the hole the relay stopped at before
// (StoppedAtKey): the consumer may have moved past it (ackFloor) because
// its records were deleted meanwhile. They are a gap like any other.
func (r *Relay) stoppedGap(ctx context.Context, ackFloor uint64) error {
	r.stopped, _ = strconv.ParseUint(r.consumer.Metadata[StoppedAtKey], 10, 64)
	if r.stopped == 0 || ackFloor < r.stopped {
		return nil // still to come: the consumer delivers it again
	}
	// The relay acknowledged nothing from there on: the consumer passed
	// deleted records only.
	if err := r.passGap(r.gap(ctx, r.reader(), r.stopped, ackFloor)); err != nil {
		return err
	}
	r.clearStopped(ctx)
	return nil
}
