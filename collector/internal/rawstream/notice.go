package rawstream

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/wire"
)

// PublishAlone stores a raw message holding tx alone (a notice, see
// wire.NoticeTx, or the fragment closing an interrupted snapshot's reads)
// on the source's subject of stream, which must end at sequence lastSeq
// (0: empty; one writer per source, as the Publisher expects it), and
// waits for its ack, retrying with the same message id until it is stored
// or ctx ends. It is for the moments before a session streams, when no
// Publisher runs: a record that must be stored before what follows it is
// done. It returns the record's sequence.
func PublishAlone(ctx context.Context, js jetstream.JetStream, stream string, src wire.Source, tx wire.Tx, lastSeq uint64, ackTimeout time.Duration, log *slog.Logger) (uint64, error) {
	m := &wire.Message{Source: src, Txs: []wire.Tx{tx}}
	data, err := wire.Marshal(m)
	if err != nil {
		return 0, err
	}
	pos, _ := m.Last()
	msg := &nats.Msg{Subject: wire.RawSubject(src.Name), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, wire.RawMsgID(src, pos, pos))
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(lastSeq, 10))
	retry := backoff.New(100*time.Millisecond, 5*time.Second)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, ackTimeout)
		ack, err := js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return ack.Sequence, nil
		}
		if wrongLastSequence(err) {
			// Stored by an earlier attempt whose ack got lost, or written
			// by somebody else.
			last, found, rerr := LastRecord(ctx, js, stream, src.Name)
			switch {
			case rerr != nil:
				return 0, fmt.Errorf("raw subject %s did not end at sequence %d as expected, and reading its last record failed: %w", msg.Subject, lastSeq, rerr)
			case found && last.MsgID == msg.Header.Get(jetstream.MsgIDHeader):
				return last.Seq, nil
			}
			return 0, &SubjectMovedError{Subject: msg.Subject, Expected: lastSeq, Last: last, Found: found}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if permanent(err) {
			return 0, fmt.Errorf("publish notice to %s: %w", msg.Subject, err)
		}
		in := retry.Next()
		log.Warn("publishing a notice to the raw stream failed, retrying with the same message id", "attempt", attempt, "retry_in", in, "err", Explain(err, ""))
		if err := retry.Sleep(ctx, in); err != nil {
			return 0, err
		}
	}
}

// LastNotice is the notice the message ends with, if it ends with one.
func LastNotice(m *wire.Message) (wire.Notice, bool) {
	if m == nil || len(m.Txs) == 0 {
		return wire.Notice{}, false
	}
	tx := &m.Txs[len(m.Txs)-1]
	if len(tx.Changes) != 1 || !wire.IsNotice(&tx.Changes[0]) {
		return wire.Notice{}, false
	}
	n, err := wire.ParseNotice(&tx.Changes[0])
	return n, err == nil
}
