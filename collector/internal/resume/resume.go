// Package resume decides where a collector resumes writing a source: whose
// records the raw stream holds of it, what to skip of what the slot sends
// again, and what a failover turned into phantoms.
//
// A source has exactly one writer, a slot of one database: its positions
// order its records, and a collector skips what the slot resends by
// comparing them. Another writer's positions mean nothing to this one: a
// collector meeting them refuses to start (WriterError) unless told
// to take the source over.
//
// Positions are only comparable on one line of history. A promoted
// standby continues on a new timeline that forked from the old one at a
// switch point: below it both timelines hold the same WAL, at and above it
// they differ. So the skip stops at the fork, and whatever the raw stream
// holds of the old timeline beyond it was never committed on the current
// server: phantoms, reported, never taken back. Nothing the new primary
// sends beyond the fork may be skipped, whatever its position.
package resume

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/pgjet/pgjet/shared/wire"
)

// Stored is the last record the raw stream holds of the source.
type Stored struct {
	// Source is the record's source: who wrote it, on which timeline.
	Source wire.Source
	// Last is the position just after its last change.
	Last wire.Position
}

// Switch is a line of a timeline history: Timeline ended at At, the first
// position of the timeline that follows it.
type Switch struct {
	Timeline int32
	At       uint64
}

// Plan is where to resume.
type Plan struct {
	// Skip, when SkipSet, is the last position already stored: the
	// decoder drops everything at or before it.
	Skip    wire.Position
	SkipSet bool
	// Phantoms, when not nil, are stored records the current server never
	// had.
	Phantoms *Phantoms
	// SameWriter: the stored records were written from this slot of this
	// database, so a missing slot means it was dropped.
	SameWriter bool
	// Warnings are lines to log: an override taken, a fork not found.
	Warnings []string
}

// Phantoms are stored records of an old timeline beyond its fork.
type Phantoms struct {
	// SourceID is the wire.Source.ID() of the phantom records' events.
	SourceID string
	Timeline int32
	// Fork is the first position that differs between the timelines; the
	// phantoms' commit positions run from there to Last, inclusive.
	Fork, Last uint64
	// NewTimeline is the current server's.
	NewTimeline int32
}

// Notice is the event consumers see about p.
func (p *Phantoms) Notice() wire.Notice {
	return wire.Notice{
		Kind:     wire.NoticePhantoms,
		Message:  p.String(),
		SourceID: p.SourceID,
		FromLSN:  wire.LSN(p.Fork).String(),
		ToLSN:    wire.LSN(p.Last).String(),
	}
}

func (p *Phantoms) String() string {
	return fmt.Sprintf("records of timeline %d committed from %s to %s (events %s:...) were stored, but the current primary (timeline %d) forked from timeline %d at %s and never had them: they are phantoms, which consumers may have to undo",
		p.Timeline, pglogrepl.LSN(p.Fork), pglogrepl.LSN(p.Last), p.SourceID, p.NewTimeline, p.Timeline, pglogrepl.LSN(p.Fork))
}

// TakeOverFlag is the flag that makes a collector its source's writer
// despite the stored records (Decide's takeOver).
const TakeOverFlag = "--take-over-source"

// WriterError says the source's last record was written by another slot or
// database than this collector's.
type WriterError struct {
	Stored, This wire.Source
}

func (e *WriterError) Error() string {
	return fmt.Sprintf("source %q is written by another collector: its last raw record comes from %s, this collector reads %s; a source id has exactly one writer: give this collector its own --source (e.g. --source %s_%s), or, if it replaces the other one (slot renamed, database restored or upgraded into a new cluster), start it once with %s",
		e.This.Name, writer(e.Stored), writer(e.This), e.This.Name, e.This.Slot, TakeOverFlag)
}

func writer(s wire.Source) string {
	return fmt.Sprintf("slot %q of database %q on system %d", s.Slot, s.Database, s.SystemID)
}

// TimelineError says the stored records cannot be placed in this server's
// history.
type TimelineError struct {
	Stored, This wire.Source
	// Older: the server is on an older timeline than the records (an old
	// primary after a failover); else the records' timeline is not in the
	// server's history.
	Older bool
}

func (e *TimelineError) Error() string {
	if e.Older {
		return fmt.Sprintf("source %q: the raw stream holds records of timeline %d, but this server is on timeline %d: is it an old primary after a failover? Point --dsn at the current primary (naming every host, with target_session_attrs=read-write); to make this server the source's writer anyway, start once with %s (records may then repeat)",
			e.This.Name, e.Stored.Timeline, e.This.Timeline, TakeOverFlag)
	}
	return fmt.Sprintf("source %q: the raw stream holds records of timeline %d, which is not in the history of this server's timeline %d, so where they diverged is unknown: is this server promoted from another branch? Point --dsn at the primary they came from, or start once with %s to stream what the slot sends (records may then repeat)",
		e.This.Name, e.Stored.Timeline, e.This.Timeline, TakeOverFlag)
}

// SameWriter reports whether a and b are read from the same slot of the
// same database: one writer, whatever the timeline.
func SameWriter(a, b wire.Source) bool {
	return a.SystemID == b.SystemID && a.Slot == b.Slot && a.Database == b.Database
}

// Decide says where a collector reading this resumes, given the last stored
// record of its source (nil: none) and history, the history of this
// server's timeline (nil on timeline 1). takeOver makes this collector the
// writer whatever the stored records say: positions are then compared only
// within one system and one line of history, and without them nothing is
// skipped (the slot's own position decides, records may repeat).
func Decide(stored *Stored, this wire.Source, history []Switch, takeOver bool) (Plan, error) {
	var p Plan
	if stored == nil {
		return p, nil
	}
	s := stored.Source
	p.SameWriter = SameWriter(s, this)
	if !p.SameWriter {
		if !takeOver {
			return p, &WriterError{Stored: s, This: this}
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("taking over source %q (%s): its last raw record comes from %s", this.Name, TakeOverFlag, writer(s)))
		if s.SystemID != this.SystemID {
			p.Warnings = append(p.Warnings, "the stored records come from another database system: their positions say nothing about this one's, so nothing is skipped")
			return p, nil
		}
	}
	switch {
	case s.Timeline == this.Timeline:
		p.Skip, p.SkipSet = stored.Last, true
		return p, nil
	case s.Timeline > this.Timeline:
		if !takeOver {
			return p, &TimelineError{Stored: s, This: this, Older: true}
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("the stored records are of timeline %d, this server is on timeline %d: nothing is skipped (%s)", s.Timeline, this.Timeline, TakeOverFlag))
		return p, nil
	}
	fork, ok := forkOf(history, s.Timeline)
	if !ok {
		if !takeOver {
			return p, &TimelineError{Stored: s, This: this}
		}
		p.Warnings = append(p.Warnings, fmt.Sprintf("timeline %d of the stored records is not in this server's history (timeline %d): nothing is skipped (%s)", s.Timeline, this.Timeline, TakeOverFlag))
		return p, nil
	}
	if stored.Last.CommitLSN < fork {
		// Everything stored is common history: the failover lost nothing
		// the collector had stored.
		p.Skip, p.SkipSet = stored.Last, true
		return p, nil
	}
	// Below the fork everything was stored (the stream is in commit order
	// and reached past it); at and beyond it the new timeline's own.
	p.Skip, p.SkipSet = wire.Position{CommitLSN: fork - 1, Final: true}, true
	p.Phantoms = &Phantoms{SourceID: s.ID(), Timeline: s.Timeline, Fork: fork, Last: stored.Last.CommitLSN, NewTimeline: this.Timeline}
	return p, nil
}

// forkOf returns where timeline tli ended in history: the first position
// of the next timeline on the way to the current one.
func forkOf(history []Switch, tli int32) (uint64, bool) {
	for _, sw := range history {
		if sw.Timeline == tli {
			return sw.At, true
		}
	}
	return 0, false
}

// ParseHistory parses a timeline history file, as TIMELINE_HISTORY returns
// it: a line per earlier timeline, "<timeline>\t<switch point>\t<reason>",
// oldest first; '#' starts a comment.
func ParseHistory(content []byte) ([]Switch, error) {
	var out []Switch
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("timeline history line %d: %q: want a timeline and a switch point", n, line)
		}
		tli, err := strconv.ParseUint(fields[0], 10, 31)
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: timeline %q: %w", n, fields[0], err)
		}
		at, err := pglogrepl.ParseLSN(fields[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: switch point %q: %w", n, fields[1], err)
		}
		if len(out) > 0 && (int32(tli) <= out[len(out)-1].Timeline || uint64(at) < out[len(out)-1].At) {
			return nil, fmt.Errorf("timeline history line %d: %q goes backwards", n, line)
		}
		out = append(out, Switch{Timeline: int32(tli), At: uint64(at)})
	}
	return out, sc.Err()
}
