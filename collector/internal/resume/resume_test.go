package resume

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/shared/wire"
)

func TestDecide(t *testing.T) {
	const sys = 7311
	this := wire.Source{Name: "app", SystemID: sys, Timeline: 2, Database: "db", Slot: "pgjet"}
	on := func(tli int32) wire.Source { s := this; s.Timeline = tli; return s }
	stored := func(src wire.Source, lsn uint64) *Stored {
		return &Stored{Source: src, Last: wire.Position{CommitLSN: lsn, Change: 3, Final: true}}
	}
	partial := &Stored{Source: on(1), Last: wire.Position{CommitLSN: 0x4000, Change: 7, Fragment: 2}}
	otherSlot := on(2)
	otherSlot.Slot = "other"
	otherDB := on(2)
	otherDB.Database, otherDB.Slot = "db2", "pgjet"
	otherSys := on(2)
	otherSys.SystemID = 42
	// Timeline 1 ended at 0x5000 (promotion), timeline 2 is this server's.
	history := []Switch{{Timeline: 1, At: 0x5000}}
	history3 := []Switch{{Timeline: 1, At: 0x5000}, {Timeline: 2, At: 0x9000}}

	tests := []struct {
		name     string
		stored   *Stored
		this     wire.Source
		history  []Switch
		takeOver bool
		want     Plan
		err      any // *WriterError or *TimelineError
	}{
		{name: "nothing stored", this: this, want: Plan{}},
		{name: "same timeline: skip through the last record", stored: stored(on(2), 0x8000), this: this, history: history,
			want: Plan{Skip: wire.Position{CommitLSN: 0x8000, Change: 3, Final: true}, SkipSet: true, SameWriter: true}},
		{name: "failover without loss: last record below the fork", stored: stored(on(1), 0x4000), this: this, history: history,
			want: Plan{Skip: wire.Position{CommitLSN: 0x4000, Change: 3, Final: true}, SkipSet: true, SameWriter: true}},
		{name: "failover inside a transaction below the fork: resume inside it", stored: partial, this: this, history: history,
			want: Plan{Skip: partial.Last, SkipSet: true, SameWriter: true}},
		{name: "failover with phantoms: skip only up to the fork", stored: stored(on(1), 0x6000), this: this, history: history,
			want: Plan{Skip: wire.Position{CommitLSN: 0x4fff, Final: true}, SkipSet: true, SameWriter: true,
				Phantoms: &Phantoms{SourceID: "app.7311.1", Timeline: 1, Fork: 0x5000, Last: 0x6000, NewTimeline: 2}}},
		{name: "last record exactly at the fork is a phantom", stored: stored(on(1), 0x5000), this: this, history: history,
			want: Plan{Skip: wire.Position{CommitLSN: 0x4fff, Final: true}, SkipSet: true, SameWriter: true,
				Phantoms: &Phantoms{SourceID: "app.7311.1", Timeline: 1, Fork: 0x5000, Last: 0x5000, NewTimeline: 2}}},
		{name: "two promotions: the fork of the stored timeline counts", stored: stored(on(1), 0x6000), this: on(3), history: history3,
			want: Plan{Skip: wire.Position{CommitLSN: 0x4fff, Final: true}, SkipSet: true, SameWriter: true,
				Phantoms: &Phantoms{SourceID: "app.7311.1", Timeline: 1, Fork: 0x5000, Last: 0x6000, NewTimeline: 3}}},
		{name: "two promotions, records of the middle timeline beyond its fork", stored: stored(on(2), 0xa000), this: on(3), history: history3,
			want: Plan{Skip: wire.Position{CommitLSN: 0x8fff, Final: true}, SkipSet: true, SameWriter: true,
				Phantoms: &Phantoms{SourceID: "app.7311.2", Timeline: 2, Fork: 0x9000, Last: 0xa000, NewTimeline: 3}}},
		{name: "after a stored phantoms notice: skip through the notice", stored: stored(on(2), 0x4fff), this: this, history: history,
			want: Plan{Skip: wire.Position{CommitLSN: 0x4fff, Change: 3, Final: true}, SkipSet: true, SameWriter: true}},
		{name: "stored timeline not in the history", stored: stored(on(2), 0x6000), this: on(3), history: history,
			err: &TimelineError{}},
		{name: "stored timeline not in the history, taken over: nothing skipped", stored: stored(on(2), 0x6000), this: on(3), history: history, takeOver: true,
			want: Plan{SameWriter: true, Warnings: []string{"timeline 2"}}},
		{name: "server on an older timeline (old primary)", stored: stored(on(3), 0x6000), this: this, history: history,
			err: &TimelineError{}},
		{name: "server on an older timeline, taken over", stored: stored(on(3), 0x6000), this: this, history: history, takeOver: true,
			want: Plan{SameWriter: true, Warnings: []string{"nothing is skipped"}}},
		{name: "another slot wrote the source", stored: stored(otherSlot, 0x6000), this: this, err: &WriterError{}},
		{name: "another database wrote the source", stored: stored(otherDB, 0x6000), this: this, err: &WriterError{}},
		{name: "another system wrote the source (restored into a new cluster)", stored: stored(otherSys, 0x6000), this: this, err: &WriterError{}},
		{name: "another slot, taken over: positions of one system still compare", stored: stored(otherSlot, 0x6000), this: this, takeOver: true,
			want: Plan{Skip: wire.Position{CommitLSN: 0x6000, Change: 3, Final: true}, SkipSet: true, Warnings: []string{"taking over"}}},
		{name: "another system, taken over: nothing skipped", stored: stored(otherSys, 0x6000), this: this, takeOver: true,
			want: Plan{Warnings: []string{"taking over", "another database system"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(tt.stored, tt.this, tt.history, tt.takeOver)
			switch want := tt.err.(type) {
			case *WriterError:
				var we *WriterError
				if !errors.As(err, &we) {
					t.Fatalf("err = %v, want a WriterError", err)
				}
				for _, s := range []string{tt.stored.Source.Slot, tt.this.Slot, "--source", TakeOverFlag} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error does not name %q: %s", s, err)
					}
				}
				return
			case *TimelineError:
				var te *TimelineError
				if !errors.As(err, &te) {
					t.Fatalf("err = %v, want a TimelineError", err)
				}
				if !strings.Contains(err.Error(), TakeOverFlag) {
					t.Errorf("error does not name the way through: %s", err)
				}
				return
			case nil:
				if err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("bad test: %T", want)
			}
			// Warnings: each wanted one is a fragment of the warning at
			// its place.
			warnings, wantWarn := got.Warnings, tt.want.Warnings
			got.Warnings, tt.want.Warnings = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan = %+v\nwant   %+v", got, tt.want)
				if got.Phantoms != nil {
					t.Logf("phantoms = %+v", *got.Phantoms)
				}
			}
			if len(warnings) != len(wantWarn) {
				t.Fatalf("warnings = %q, want %d", warnings, len(wantWarn))
			}
			for i, w := range wantWarn {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to say %q", i, warnings[i], w)
				}
			}
		})
	}
}

// The warnings of an override say what was overridden.
func TestDecideWarnings(t *testing.T) {
	this := wire.Source{Name: "app", SystemID: 1, Timeline: 1, Database: "db", Slot: "a"}
	other := this
	other.SystemID = 2
	p, err := Decide(&Stored{Source: other, Last: wire.Position{CommitLSN: 10, Final: true}}, this, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 2 || !strings.Contains(p.Warnings[0], "taking over") || !strings.Contains(p.Warnings[1], "nothing is skipped") {
		t.Errorf("warnings = %q", p.Warnings)
	}
}

// The skip a plan gives drops exactly what the new timeline shares with
// the old one: a transaction of the new primary committed at the fork
// itself (its first record) is kept.
func TestPhantomSkipKeepsTheFork(t *testing.T) {
	this := wire.Source{Name: "app", SystemID: 1, Timeline: 2, Database: "db", Slot: "a"}
	old := this
	old.Timeline = 1
	p, err := Decide(&Stored{Source: old, Last: wire.Position{CommitLSN: 0x6000, Final: true}}, this, []Switch{{Timeline: 1, At: 0x5000}}, false)
	if err != nil {
		t.Fatal(err)
	}
	skipped := func(commit uint64) bool {
		return commit < p.Skip.CommitLSN || commit == p.Skip.CommitLSN && p.Skip.Final
	}
	for _, tt := range []struct {
		commit uint64
		want   bool
	}{{0x4000, true}, {0x4ff8, true}, {0x5000, false}, {0x5008, false}, {0x6000, false}} {
		if got := skipped(tt.commit); got != tt.want {
			t.Errorf("commit %#x skipped = %v, want %v", tt.commit, got, tt.want)
		}
	}
	// The notice goes just before the fork, after everything skipped.
	if n := wire.NoticeLSN(p.Phantoms.Fork); !skipped(n) || n+1 != p.Phantoms.Fork {
		t.Errorf("notice at %#x, fork %#x", n, p.Phantoms.Fork)
	}
}

func TestParseHistory(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []Switch
		bad     bool
	}{
		{name: "one promotion", content: "1\t0/3000158\tno recovery target specified\n", want: []Switch{{1, 0x3000158}}},
		{name: "two, with a comment and blank lines", content: "# made by a test\n1\t0/3000158\tno recovery target specified\n\n2\t1/A0000000\tbefore 2024-01-01\n",
			want: []Switch{{1, 0x3000158}, {2, 0x1A0000000}}},
		{name: "empty", content: "", want: nil},
		{name: "no switch point", content: "1\n", bad: true},
		{name: "bad lsn", content: "1\tnope\treason\n", bad: true},
		{name: "bad timeline", content: "x\t0/1\treason\n", bad: true},
		{name: "backwards", content: "2\t0/5\tr\n1\t0/6\tr\n", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseHistory([]byte(tt.content))
		if tt.bad {
			if err == nil {
				t.Errorf("%s: parsed %v", tt.name, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestPhantomsNotice(t *testing.T) {
	p := &Phantoms{SourceID: "app.7311.1", Timeline: 1, Fork: 0x5000060, Last: 0x5123456, NewTimeline: 2}
	n := p.Notice()
	if n.Kind != wire.NoticePhantoms || n.SourceID != "app.7311.1" || n.FromLSN != "0/5000060" || n.ToLSN != "0/5123456" {
		t.Errorf("notice = %+v", n)
	}
	if !strings.Contains(n.Message, "phantoms") || !strings.Contains(n.Message, "timeline 2") {
		t.Errorf("message = %q", n.Message)
	}
}
