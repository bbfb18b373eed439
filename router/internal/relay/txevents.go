package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

// A route with transaction events publishes a begin event before its first
// event of a transaction and a commit event, with the count of its events,
// after the transaction's last fragment. Transactions without events of the
// route get neither. A large transaction spans several raw records; the
// counts carry over from one to the next (openTx), and a relay that starts
// in the middle of one counts its earlier fragments from the raw stream
// (recoverTx), so the commit event is the same whenever it is rendered.

// openTx is the transaction of one source whose commit event is due.
type openTx struct {
	lsn    uint64
	begun  bool
	count  int
	tables []envelope.TableCount
}

func (t *openTx) add(rel *wire.Relation) {
	t.count++
	if rel == nil {
		return // messages count, but belong to no table
	}
	for i := range t.tables {
		if tc := &t.tables[i]; tc.Schema == rel.Schema && tc.Table == rel.Table {
			tc.Count++
			return
		}
	}
	t.tables = append(t.tables, envelope.TableCount{Schema: rel.Schema, Table: rel.Table, Count: 1})
}

// openTx returns the state of tx, the current transaction of src.
func (r *Relay) openTx(src *wire.Source, tx *wire.Tx) *openTx {
	id := src.ID()
	t := r.txs[id]
	if t == nil || t.lsn != tx.CommitLSN {
		t = &openTx{lsn: tx.CommitLSN}
		if r.txs == nil {
			r.txs = map[string]*openTx{}
		}
		r.txs[id] = t
	}
	return t
}

// closeTx ends tx, whose last fragment this is: it renders its commit event
// if the route had events in it and publishes transaction events, and
// reports whether it had.
func (r *Relay) closeTx(rs *renderState, src *wire.Source, tx *wire.Tx) bool {
	if !r.tracksTx() {
		return false
	}
	id := src.ID()
	t := r.txs[id]
	if t == nil || t.lsn != tx.CommitLSN {
		return false
	}
	delete(r.txs, id)
	if !t.begun {
		return false
	}
	if r.route.Transactions() {
		ev := envelope.Event{Source: src, Tx: tx, Kind: envelope.KindCommit, Count: t.count, Tables: t.tables}
		r.renderOne(rs, ev, wire.EventID{CommitLSN: tx.CommitLSN, Seg: wire.SegCommit, Part: -1})
	}
	return true
}

// tracksTx reports whether the relay follows each transaction's events
// across raw records: for transaction events, and for groups, whose last
// part must say that it is.
func (r *Relay) tracksTx() bool { return r.route.Transactions() || r.route.Group() }

// inTx reports whether ev belongs to its transaction: a logical decoding
// message emitted outside any (pg_logical_emit_message with transactional
// false) does not, so no transaction event counts or brackets it.
func inTx(ev *envelope.Event) bool {
	return ev.Change == nil || ev.Change.Op != wire.OpMessage || ev.Change.Transactional
}

// relationChanged reports whether rel is new to the route, or its columns
// changed since the route's last relation event of that table, and
// remembers it.
func (r *Relay) relationChanged(src *wire.Source, rel *wire.Relation) bool {
	var sb strings.Builder
	sb.WriteByte(rel.ReplicaIdentity)
	for i := range rel.Columns {
		c := &rel.Columns[i]
		fmt.Fprintf(&sb, "|%s %d %d %t %s.%s", c.Name, c.TypeOID, c.TypeMod, c.Key, c.Type.Schema, c.Type.Name)
	}
	key := src.ID() + "\x00" + rel.Schema + "\x00" + rel.Table
	sig := sb.String()
	if r.relSigs[key] == sig {
		return false
	}
	if r.relSigs == nil {
		r.relSigs = map[string]string{}
	}
	r.relSigs[key] = sig
	return true
}

// recoverTx prepares the count of a transaction that m, the raw record at
// seq, continues while the relay has not seen its start (it started in the
// middle of it): it reads the transaction's earlier fragments back from
// the raw stream, which holds them just before on the same subject.
func (r *Relay) recoverTx(ctx context.Context, seq uint64, subject string, m *wire.Message) error {
	if !r.tracksTx() || len(m.Txs) == 0 {
		return nil
	}
	first := &m.Txs[0]
	if first.Fragment == 0 {
		return nil
	}
	if t := r.txs[m.Source.ID()]; t != nil && t.lsn == first.CommitLSN {
		return nil
	}
	var earlier []*wire.Message // newest first
	found := false
	for s := seq - 1; s > 0 && !found; s-- {
		gctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		sm, err := r.raw.GetMsg(gctx, s)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			if info, ierr := r.raw.Info(ctx); ierr == nil && s < info.State.FirstSeq {
				break // expired: count what is left
			}
			continue // deleted
		}
		if err != nil {
			return fmt.Errorf("read the start of the transaction at %s from raw record %d: %w", wire.LSN(first.CommitLSN), s, err)
		}
		if sm.Subject != subject {
			continue
		}
		var em wire.Message
		if err := wire.Unmarshal(sm.Data, &em); err != nil {
			return fmt.Errorf("raw record %d of stream %s: %w", s, r.cfg.RawStream, err)
		}
		has := false
		for i := range em.Txs {
			if tx := &em.Txs[i]; tx.CommitLSN == first.CommitLSN {
				has = true
				found = found || tx.Fragment == 0
			}
		}
		if !has {
			break
		}
		earlier = append(earlier, &em)
	}
	if !found {
		r.log.Warn("the start of a transaction is gone from the raw stream: its commit event counts only the events still there",
			"lsn", wire.LSN(first.CommitLSN), "raw_seq", seq)
	}
	t := r.openTx(&m.Source, first)
	for i := len(earlier) - 1; i >= 0; i-- {
		em := earlier[i]
		for ti := range em.Txs {
			tx := &em.Txs[ti]
			if tx.CommitLSN != first.CommitLSN || tx.IsPiece() && tx.PieceOffset > 0 {
				continue // a later piece: its change counted with the first
			}
			for ci := range tx.Changes {
				c := &tx.Changes[ci]
				ev := envelope.Event{Source: &em.Source, Tx: tx, Change: c}
				rels := []int32{c.Rel}
				switch c.Op {
				case wire.OpMessage:
					rels = []int32{-1}
				case wire.OpTruncate:
					rels = c.TruncateRels
				}
				for _, ri := range rels {
					ev.Rel = nil
					if ri >= 0 {
						ev.Rel = &em.Relations[ri]
					}
					if r.route.Selects(&ev) && inTx(&ev) {
						t.begun = true
						t.add(ev.Rel)
					}
				}
			}
		}
	}
	r.log.Info("counted the earlier fragments of a transaction for its commit event", "lsn", wire.LSN(first.CommitLSN),
		"fragments_in_records", len(earlier), "events", t.count)
	return nil
}
