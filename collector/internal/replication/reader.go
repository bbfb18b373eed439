// Package replication runs the logical replication protocol: it feeds
// XLogData to the pgoutput decoder and reports the checkpoint's confirmed
// position back to Postgres.
package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgjet/pgjet/collector/internal/checkpoint"
	"github.com/pgjet/pgjet/collector/internal/pgoutput"
	"github.com/pgjet/pgjet/collector/internal/pgsetup"
	"github.com/pgjet/pgjet/collector/internal/rawstream"
)

// Reader is one replication session: it reads the replication stream
// (pgoutput, from the slot) into the decoder and reports the confirmed
// position back to Postgres. "Stream" elsewhere is the raw stream
// (package rawstream) or an output stream (the router's).
type Reader struct {
	conn *pgconn.PgConn
	dec  *pgoutput.Decoder
	pub  *rawstream.Publisher
	cp   *checkpoint.Checkpoint
	log  *slog.Logger
	// StatusInterval is the longest time between status updates.
	StatusInterval time.Duration
	// Timeout bounds the walsender's silence (see liveness); 0: none.
	Timeout time.Duration
	// Fault, when set, is asked after every message received: a non-nil
	// error (one the connection reported out of band, in a notice) ends
	// the session before that message or any later one is handed on, so
	// the slot is confirmed only up to what came before it.
	Fault func() error
	live  liveness

	lastStatus   time.Time
	lastSent     uint64
	holdingSince time.Time
	caughtUp     bool // the last receive waited for the server
	// received is the WAL position the server has sent up to, as far as
	// its messages say: the start of the last data, or a keepalive's end.
	received atomic.Uint64
}

// readLinger is how long the reader pauses after catching up with the
// walsender before it reads again. Read as they come, messages cost both
// processes a wakeup each: on a small machine that CPU is taken from the
// walsender, which is what bounds the rate. The pause lets messages
// gather in the socket, to be read in a row; it adds at most that much
// latency.
const readLinger = 500 * time.Microsecond

// caughtUpAfter: a receive that took longer waited for the network, not
// for buffered bytes.
const caughtUpAfter = 50 * time.Microsecond

// New returns a Reader reading from conn, which must be in replication mode
// and already have started replication. It hands fragments to pub and
// reports cp's confirmed position, which pub's acks advance.
func New(conn *pgconn.PgConn, dec *pgoutput.Decoder, pub *rawstream.Publisher, cp *checkpoint.Checkpoint, log *slog.Logger) *Reader {
	// A transaction with nothing to store (a heartbeat's) moves an idle
	// slot: a walsender that never catches up sends no keepalive that would.
	dec.OnEmpty = func(end uint64) { cp.AdvanceIdle(end, false) }
	return &Reader{conn: conn, dec: dec, pub: pub, cp: cp, log: log, StatusInterval: DefaultStatusInterval}
}

// Start starts replication of slot from its confirmed position with pgoutput
// protocol version 1 and logical decoding messages.
func Start(ctx context.Context, conn *pgconn.PgConn, slot, publication string) error {
	args := []string{
		"proto_version '1'",
		fmt.Sprintf("publication_names '%s'", quoteLiteral(quoteIdent(publication))),
		"messages 'true'",
	}
	// Start position 0: the server starts from the slot's confirmed_flush_lsn.
	// Timeline stays 0: pglogrepl would send it as a plugin option, which
	// pgoutput rejects.
	err := pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgsetup.SQLStateObjectInUse {
			return &pgsetup.SlotBusyError{Slot: slot}
		}
		return fmt.Errorf("start replication on slot %s: %w", slot, err)
	}
	return nil
}

func quoteIdent(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}

func quoteLiteral(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Emit hands a fragment to the publisher. While the publisher's queue is
// full (JetStream slow or down) it keeps the replication connection alive
// with status updates, and reading stops: Postgres keeps the WAL.
func (s *Reader) Emit(ctx context.Context, f *pgoutput.Fragment) error {
	for {
		// Held, the reader reads no keepalive requests: it reports on its
		// own, well within the walsender's timeout (see StatusInterval).
		err := s.pub.Add(ctx, f, min(time.Second, s.StatusInterval/2))
		if err == nil {
			if !s.holdingSince.IsZero() {
				s.log.Info("raw stream accepting again, reading resumed", "held_for", time.Since(s.holdingSince).Round(time.Millisecond))
				s.holdingSince = time.Time{}
			}
			return nil
		}
		if !errors.Is(err, rawstream.ErrQueueFull) {
			return err
		}
		if s.holdingSince.IsZero() {
			s.holdingSince = time.Now()
			s.log.Warn("raw stream not accepting (JetStream slow or unreachable): holding replication, the slot stays where it is")
		}
		if time.Since(s.lastStatus) >= s.StatusInterval/2 {
			if err := s.SendStatus(ctx); err != nil {
				return err
			}
		}
	}
}

// Run reads the replication stream until ctx ends (returns nil) or an error.
func (s *Reader) Run(ctx context.Context) error {
	s.live.heard(time.Now())
	for {
		if ctx.Err() != nil {
			return nil
		}
		confirmed := s.cp.Confirmed()
		now := time.Now()
		if now.Sub(s.lastStatus) >= s.StatusInterval || (confirmed != s.lastSent && now.Sub(s.lastStatus) >= 200*time.Millisecond) {
			if err := s.SendStatus(ctx); err != nil {
				return err
			}
		}
		if s.caughtUp {
			time.Sleep(readLinger)
		}
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		start := time.Now()
		msg, err := s.conn.ReceiveMessage(rctx)
		s.caughtUp = time.Since(start) > caughtUpAfter
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				if err := s.checkLiveness(ctx); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("receive replication message: %w", err)
		}
		if s.Fault != nil {
			if err := s.Fault(); err != nil {
				return err
			}
		}
		s.live.heard(time.Now())
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handle(ctx, m.Data); err != nil {
				return err
			}
			// Handing on may have waited for JetStream, while nothing was
			// read: that silence is not the walsender's.
			s.live.heard(time.Now())
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("replication stream ended by the server")
		default:
			// Notices and parameter updates: nothing to do.
		}
	}
}

func (s *Reader) handle(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("replication stream: empty CopyData")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("replication keepalive: %w", err)
		}
		s.receivedUpTo(uint64(k.ServerWALEnd))
		// An idle slot moves to the server's WAL end (see the checkpoint).
		s.cp.AdvanceIdle(uint64(k.ServerWALEnd), s.dec.InTx())
		if k.ReplyRequested {
			return s.SendStatus(ctx)
		}
		return nil
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("replication data: %w", err)
		}
		if err := s.dec.Handle(ctx, uint64(x.WALStart), x.WALData); err != nil {
			return fmt.Errorf("at %s: %w", x.WALStart, err)
		}
		s.receivedUpTo(uint64(x.WALStart))
		return nil
	default:
		return fmt.Errorf("replication stream: unknown message %q", data[0])
	}
}

// Received is the WAL position received so far; safe to call while Run runs.
func (s *Reader) Received() uint64 { return s.received.Load() }

// receivedUpTo raises the received position (Run's goroutine only).
func (s *Reader) receivedUpTo(lsn uint64) {
	if lsn > s.received.Load() {
		s.received.Store(lsn)
	}
}

// SendStatus reports the confirmed position, as the checkpoint's Status
// has it: never a received position as flushed.
func (s *Reader) SendStatus(ctx context.Context) error {
	return s.sendStatus(ctx, false)
}

// sendStatus sends the status update, asking the walsender to answer at
// once when reply is set.
func (s *Reader) sendStatus(ctx context.Context, reply bool) error {
	st := s.cp.Status()
	st.ReplyRequested = reply
	lsn := st.WALFlushPosition
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, st)
	if err != nil {
		return fmt.Errorf("send standby status %s: %w", lsn, err)
	}
	if uint64(lsn) != s.lastSent {
		s.log.Debug("confirmed", "lsn", lsn)
	}
	s.lastSent = uint64(lsn)
	s.lastStatus = time.Now()
	return nil
}
