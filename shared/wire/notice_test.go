package wire

import (
	"testing"
)

func TestNoticeRoundTrip(t *testing.T) {
	n := Notice{Kind: NoticePhantoms, Message: "m", SourceID: "app.7311.1", FromLSN: "0/5000060", ToLSN: "0/5100000"}
	tx, err := NoticeTx(n, 0x5000060)
	if err != nil {
		t.Fatal(err)
	}
	if tx.CommitLSN != 0x500005F || tx.EndLSN != tx.CommitLSN || !tx.Final || len(tx.Changes) != 1 {
		t.Fatalf("notice tx = %+v", tx)
	}
	c := &tx.Changes[0]
	if !IsNotice(c) || NoticeKind(c) != NoticePhantoms {
		t.Fatalf("IsNotice = %v, kind %q", IsNotice(c), NoticeKind(c))
	}
	got, err := ParseNotice(c)
	if err != nil || got != n {
		t.Fatalf("ParseNotice = %+v, %v; want %+v", got, err, n)
	}
	// It travels in a raw message like any change.
	b, err := Marshal(&Message{Source: Source{Name: "app", SystemID: 7311, Timeline: 2}, Txs: []Tx{tx}})
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if !IsNotice(&m.Txs[0].Changes[0]) {
		t.Fatal("decoded notice is not a notice")
	}
}

func TestIsNotice(t *testing.T) {
	tests := []struct {
		name string
		c    Change
		want bool
	}{
		{"notice", Change{Op: OpMessage, Prefix: NoticePrefix + "gap"}, true},
		{"application message", Change{Op: OpMessage, Prefix: "outbox"}, false},
		{"transactional, so an application's", Change{Op: OpMessage, Prefix: NoticePrefix + "gap", Transactional: true}, false},
		{"a row change", Change{Op: OpInsert, Prefix: NoticePrefix + "gap"}, false},
		{"prefix alone", Change{Op: OpMessage, Prefix: "pgjet.notice"}, false},
	}
	for _, tt := range tests {
		if got := IsNotice(&tt.c); got != tt.want {
			t.Errorf("%s: IsNotice = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNoticeKindChecked(t *testing.T) {
	for _, kind := range []string{"", "a.b", "two words"} {
		if _, err := NoticeTx(Notice{Kind: kind}, 10); err == nil {
			t.Errorf("kind %q accepted", kind)
		}
	}
}
