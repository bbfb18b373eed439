package replication

import (
	"context"
	"fmt"
	"time"
)

// An idle walsender sends nothing: no data, and no keepalive while it
// has nothing new to report. So silence alone does not tell a dead link
// (a black-holed network path, a frozen server) from an idle one: the
// collector asks. After Timeout/3 without hearing anything it sends its
// status update with ReplyRequested set, again every Timeout/3; a walsender
// that lives answers with a keepalive at once. One that stays silent for
// Timeout ends the session with a SilentError, and the session is made
// again. The time the collector itself spends not reading (JetStream slow)
// does not count.

// liveness is the state of the check; Run's goroutine only.
type liveness struct {
	lastHeard time.Time
	lastAsked time.Time
}

func (l *liveness) heard(now time.Time) { l.lastHeard, l.lastAsked = now, time.Time{} }

// SilentError ends a session whose walsender sent nothing, although asked
// to reply, for longer than the timeout. It is transient: the session is
// made again.
type SilentError struct {
	For     time.Duration
	Timeout time.Duration
	// PID is the walsender's process id: it may still hold the slot.
	PID uint32
}

func (e *SilentError) Error() string {
	return fmt.Sprintf("the walsender (pid %d) sent nothing, no data and no keepalive, for %s although asked to reply (--replication-timeout %s): the connection or the server is stuck; connecting again",
		e.PID, e.For.Round(time.Second), e.Timeout)
}

// checkLiveness asks a silent walsender to reply, and gives up on one that
// stays silent for the timeout.
func (s *Reader) checkLiveness(ctx context.Context) error {
	if s.Timeout <= 0 {
		return nil
	}
	now := time.Now()
	silent := now.Sub(s.live.lastHeard)
	if silent >= s.Timeout {
		return &SilentError{For: silent, Timeout: s.Timeout, PID: s.conn.PID()}
	}
	ask := s.Timeout / 3
	if silent >= ask && now.Sub(s.live.lastAsked) >= ask {
		s.live.lastAsked = now
		if s.live.lastAsked.Sub(s.live.lastHeard) >= 2*ask {
			s.log.Warn("the walsender has not answered a request to reply", "silent_for", silent.Round(time.Second), "gives_up_after", s.Timeout)
		}
		return s.sendStatus(ctx, true)
	}
	return nil
}
