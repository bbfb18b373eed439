package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/wire"
)

// countEarlier has the renderer count the earlier fragments of the
// transaction that m, the raw record at seq, continues while the relay has
// not seen its start (it started in the middle of it), for its commit
// event: it reads them back from the raw stream, which holds them just
// before on the same subject (render.Renderer.NeedsEarlier).
func (r *Relay) countEarlier(ctx context.Context, seq uint64, subject string, m *wire.Message) error {
	first := &m.Txs[0]
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
	slices.Reverse(earlier)
	n := r.render.CountEarlier(m, earlier)
	r.log.Info("counted the earlier fragments of a transaction for its commit event", "lsn", wire.LSN(first.CommitLSN),
		"fragments_in_records", len(earlier), "events", n)
	return nil
}
