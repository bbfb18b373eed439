package render

import (
	"fmt"
	"strings"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/router/internal/route"
	"github.com/pgjet/pgjet/shared/wire"
)

// A route with transaction events publishes a begin event before its first
// event of a transaction and a commit event, with the count of its events,
// after the transaction's last fragment. Transactions without events of the
// route get neither. A large transaction spans several raw records; the
// counts carry over from one to the next, and a relay that starts in the
// middle of one counts its earlier fragments, which it reads back from the
// raw stream (NeedsEarlier, CountEarlier), so the commit event is the same
// whenever it is rendered. Grouping routes follow transactions the same
// way: a transaction's last part says that it is.

// txState is what a route remembers of transactions and relations.
type txState struct {
	route *route.Route
	// txs holds, by source id, the transaction whose commit event is due.
	txs map[string]*openTx
	// relSigs holds, by source, schema and table, the columns of the
	// route's last relation event of the table.
	relSigs map[string]string
}

// openTx is the transaction of one source whose commit event is due.
type openTx struct {
	lsn    uint64
	begun  bool
	count  int
	tables []envelope.TableCount
}

func (s *txState) init(rt *route.Route) {
	*s = txState{route: rt, txs: map[string]*openTx{}, relSigs: map[string]string{}}
}

// tracks reports whether the route follows each transaction's events
// across raw records: for transaction events, and for groups.
func (s *txState) tracks() bool { return s.route.Transactions() || s.route.Group() }

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

// open returns the state of tx, the current transaction of the source
// whose id (wire.Source.ID) is id.
func (s *txState) open(id string, tx *wire.Tx) *openTx {
	t := s.txs[id]
	if t == nil || t.lsn != tx.CommitLSN {
		t = &openTx{lsn: tx.CommitLSN}
		s.txs[id] = t
	}
	return t
}

// close ends tx of source id, whose last fragment this is, and returns its
// state (nil when the route had nothing of it or follows no transactions).
func (s *txState) close(id string, tx *wire.Tx) *openTx {
	if !s.tracks() {
		return nil
	}
	t := s.txs[id]
	if t == nil || t.lsn != tx.CommitLSN {
		return nil
	}
	delete(s.txs, id)
	return t
}

// relationChanged reports whether rel is new to the route, or its columns
// changed since the route's last relation event of that table, and
// remembers it.
func (s *txState) relationChanged(srcID string, rel *wire.Relation) bool {
	var sb strings.Builder
	sb.WriteByte(rel.ReplicaIdentity)
	for i := range rel.Columns {
		c := &rel.Columns[i]
		fmt.Fprintf(&sb, "|%s %d %d %t %s.%s", c.Name, c.TypeOID, c.TypeMod, c.Key, c.Type.Schema, c.Type.Name)
	}
	key := srcID + "\x00" + rel.Schema + "\x00" + rel.Table
	sig := sb.String()
	if s.relSigs[key] == sig {
		return false
	}
	s.relSigs[key] = sig
	return true
}

// NeedsEarlier reports whether m continues a transaction the route follows
// but has not seen start (the relay started in the middle of it): its
// earlier fragments must be counted (CountEarlier) before m is rendered.
func (r *Renderer) NeedsEarlier(m *wire.Message) bool {
	if !r.txs.tracks() || len(m.Txs) == 0 || m.Txs[0].Fragment == 0 {
		return false
	}
	t := r.txs.txs[m.Source.ID()]
	return t == nil || t.lsn != m.Txs[0].CommitLSN
}

// CountEarlier counts, for the commit event of the transaction m continues
// (see NeedsEarlier), the route's events in its earlier fragments, which
// earlier holds: raw records of the same source, oldest first. It returns
// the count so far.
func (r *Renderer) CountEarlier(m *wire.Message, earlier []*wire.Message) int {
	first := &m.Txs[0]
	t := r.txs.open(m.Source.ID(), first)
	for _, em := range earlier {
		for ti := range em.Txs {
			tx := &em.Txs[ti]
			if tx.CommitLSN != first.CommitLSN || tx.IsPiece() && tx.PieceOffset > 0 {
				continue // another transaction, or a later piece: its change counted with the first
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
	return t.count
}
