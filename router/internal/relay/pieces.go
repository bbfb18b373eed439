package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/backoff"
	"github.com/pgjet/pgjet/shared/wire"
)

// A change too large for one raw record travels in pieces, in consecutive
// records of its source's subject (wire.Tx.PieceTotal). With only a few raw
// records in flight, the router cannot count on the consumer to deliver all
// the pieces while it holds the first one unacknowledged, so it reads them
// itself, by stream sequence, when the first piece arrives; it acknowledges
// the first piece once the change's event is stored. The later pieces, when
// the consumer delivers them, are acknowledged without output: their change
// was handled with the first piece (records are acknowledged in stream
// order, so a later piece is never acknowledged before the first).

func hasPieces(m *wire.Message) bool {
	for i := range m.Txs {
		if m.Txs[i].IsPiece() {
			return true
		}
	}
	return false
}

// maxPreallocate bounds what a first piece's declared total reserves up
// front; the rest grows as pieces arrive.
const maxPreallocate = 64 << 20

// joinPieces rewrites m, the raw record at seq: a first piece becomes its
// whole change, read from the pieces that follow it in m and in the records
// after seq on the same subject; later pieces are dropped. A change whose
// event cannot fit maxPayload whatever its rendering is kept without its
// values: it returns those changes' encoded sizes by index in m.Txs.
func (r *Relay) joinPieces(ctx context.Context, raw jetstream.Msg, seq uint64, m *wire.Message, maxPayload int64) (map[int]int, error) {
	last := seq
	var tooLarge map[int]int
	txs := m.Txs[:0:0]
	for ti := 0; ti < len(m.Txs); ti++ {
		tx := m.Txs[ti]
		if !tx.IsPiece() {
			txs = append(txs, tx)
			continue
		}
		if tx.PieceOffset > 0 {
			continue // its change went out with its first piece
		}
		buf := make([]byte, 0, min(tx.PieceTotal, maxPreallocate))
		buf = append(buf, tx.Changes[0].Content...)
		gone := false
		// The rest of this record first, then the records after it.
		for ti+1 < len(m.Txs) && uint64(len(buf)) < tx.PieceTotal {
			if gone = abandoned(&tx, &m.Txs[ti+1]); gone {
				break
			}
			ti++
			var err error
			if buf, err = appendPiece(buf, &tx, &m.Txs[ti]); err != nil {
				return nil, fmt.Errorf("raw record %d: %w", seq, err)
			}
		}
		for !gone && uint64(len(buf)) < tx.PieceTotal {
			next, nm, err := r.nextRecord(ctx, raw, last, &tx, uint64(len(buf)))
			if err != nil {
				return nil, err
			}
			last = next
			for i := range nm.Txs {
				if uint64(len(buf)) == tx.PieceTotal {
					break
				}
				if gone = abandoned(&tx, &nm.Txs[i]); gone {
					break
				}
				if buf, err = appendPiece(buf, &tx, &nm.Txs[i]); err != nil {
					return nil, fmt.Errorf("raw record %d: %w", next, err)
				}
			}
		}
		if gone {
			// Left without events; what followed it comes in its turn.
			if tx.Snapshot != nil {
				r.stats.abandoned.Add(1)
				r.log.Warn("a snapshot read in pieces was left incomplete by a stopped collector; its row comes again from the backfill that goes on with the snapshot",
					"raw_seq", seq, "lsn", wire.LSN(tx.CommitLSN), "index", tx.FirstChange, "bytes", len(buf), "of", tx.PieceTotal)
			} else {
				r.log.Error("a change in pieces was left incomplete by a stopped collector, and a notice follows it (a gap: its slot was created again; or phantoms after a failover): Postgres never sends the rest, so it has no event",
					"raw_seq", seq, "lsn", wire.LSN(tx.CommitLSN), "index", tx.FirstChange, "bytes", len(buf), "of", tx.PieceTotal)
			}
			tx.Changes, tx.PieceOffset, tx.PieceTotal = nil, 0, 0
			txs = append(txs, tx)
			continue
		}
		c, err := wire.DecodeChange(buf, &tx.Changes[0], m.Relations)
		if err != nil {
			return nil, fmt.Errorf("raw records %d-%d (subject %s): %w", seq, last, raw.Subject(), err)
		}
		if int64(len(buf)) > oversizeFactor*maxPayload {
			// Rendering it would take several times its size in memory
			// only to find it too large: dead-letter it without values.
			c.Old, c.New, c.Content = nil, nil, nil
			if tooLarge == nil {
				tooLarge = map[int]int{}
			}
			tooLarge[len(txs)] = len(buf)
		}
		tx.Changes = []wire.Change{c}
		tx.PieceOffset, tx.PieceTotal = 0, 0
		txs = append(txs, tx)
		r.log.Info("large change put together from pieces", "raw_seq", seq, "raw_seq_last", last, "bytes", len(buf),
			"lsn", wire.LSN(tx.CommitLSN), "index", tx.FirstChange)
	}
	m.Txs = txs
	return tooLarge, nil
}

// oversizeFactor: no value renders to less than half its encoded size
// (bytea, as base64, takes 4/3 of a byte per byte, its text form 2), so a
// change encoded in more than twice max_payload makes too large an event.
const oversizeFactor = 2

// abandoned reports whether next, where the next piece of first's change
// should be, shows the change was left incomplete for good. A snapshot
// read: the collector stopped between its pieces, and nothing resends a
// read (the next one closed the reads past it, or went on with changes
// after a backfill chunk): the row comes again from the backfill that
// goes on from the last stored chunk. A change: its pieces are resent by
// Postgres, so a hole in them stays an error, unless a notice of the
// collector comes next: the slot was lost and created again (a gap) or a
// failover left the change to the old timeline (phantoms), and Postgres
// will never send the rest.
func abandoned(first, next *wire.Tx) bool {
	if next.IsPiece() && next.CommitLSN == first.CommitLSN && next.FirstChange == first.FirstChange {
		return false
	}
	return first.Snapshot != nil || len(next.Changes) == 1 && wire.IsNotice(&next.Changes[0])
}

// appendPiece appends next, which must be the piece of first's change that
// continues at len(buf).
func appendPiece(buf []byte, first, next *wire.Tx) ([]byte, error) {
	if !next.IsPiece() || next.CommitLSN != first.CommitLSN || next.FirstChange != first.FirstChange ||
		next.PieceTotal != first.PieceTotal || next.PieceOffset != uint64(len(buf)) {
		return nil, fmt.Errorf("piece at byte %d of change %d of the transaction at %s is missing (found %s)",
			len(buf), first.FirstChange, wire.LSN(first.CommitLSN), describePiece(next))
	}
	return append(buf, next.Changes[0].Content...), nil
}

func describePiece(t *wire.Tx) string {
	if !t.IsPiece() {
		return fmt.Sprintf("change %d of the transaction at %s", t.FirstChange, wire.LSN(t.CommitLSN))
	}
	return fmt.Sprintf("piece at byte %d of change %d of the transaction at %s", t.PieceOffset, t.FirstChange, wire.LSN(t.CommitLSN))
}

// nextRecord reads the first record after seq on raw's subject, waiting for
// the collector to publish it. It keeps raw from being redelivered while it
// waits.
func (r *Relay) nextRecord(ctx context.Context, raw jetstream.Msg, seq uint64, first *wire.Tx, at uint64) (uint64, *wire.Message, error) {
	retry := backoff.New(minBackoff, 2*time.Second)
	lastSignal, lastLog := time.Now(), time.Now()
	for {
		gctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		sm, err := r.raw.GetMsg(gctx, seq+1, jetstream.WithGetMsgSubject(raw.Subject()))
		cancel()
		if err == nil {
			var m wire.Message
			if err := wire.Unmarshal(sm.Data, &m); err != nil {
				return 0, nil, fmt.Errorf("raw record %d of stream %s (subject %s): %w", sm.Sequence, r.cfg.RawStream, sm.Subject, err)
			}
			return sm.Sequence, &m, nil
		}
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) && !transientNATS(err) {
			return 0, nil, fmt.Errorf("read the next piece of a large change from raw stream %s after record %d: %w", r.cfg.RawStream, seq, err)
		}
		// Not published yet (the collector is behind, or restarting).
		r.log.Debug("next piece of a large change not stored yet", "after_raw_seq", seq, "subject", raw.Subject())
		if time.Since(lastLog) > 30*time.Second {
			lastLog = time.Now()
			r.log.Warn("waiting for the next piece of a large change", "after_raw_seq", seq, "subject", raw.Subject(),
				"lsn", wire.LSN(first.CommitLSN), "index", first.FirstChange, "at_byte", at, "of", first.PieceTotal)
		}
		if time.Since(lastSignal) > r.cfg.AckWait/4 {
			lastSignal = time.Now()
			if err := raw.InProgress(); err != nil {
				r.log.Debug("raw record in-progress signal", "err", err)
			}
		}
		if err := retry.Wait(ctx); err != nil {
			return 0, nil, err
		}
	}
}
