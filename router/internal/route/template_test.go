package route

import (
	"slices"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/router/internal/envelope"
	"github.com/pgjet/pgjet/shared/wire"
)

func TestTemplates(t *testing.T) {
	users := rel("public", "users")
	for _, tc := range []struct {
		name             string
		c                Config
		ev               *envelope.Event
		want             string
		dead             string
		subjects         []string // nil: not checked
		msgWant, msgPref string   // "" msgPref: "outbox"
		noticeWant       string   // subject of a phantoms notice; "": not checked
	}{
		{
			name: "default", ev: rowEvent(wire.OpInsert, users), want: "postgres.public.users.insert",
			msgWant: "postgres._messages.outbox", dead: "postgres._deadletter",
			subjects:   []string{"postgres.*.*.*", "postgres._messages.*", "postgres._notices.*", "postgres._deadletter"},
			noticeWant: "postgres._notices.phantoms",
		},
		{
			name: "default with prefix", c: Config{Prefix: "acme.cdc"}, ev: rowEvent(wire.OpTruncate, users), want: "acme.cdc.public.users.truncate",
			msgWant: "acme.cdc._messages.outbox", dead: "acme.cdc._deadletter",
			subjects:   []string{"acme.cdc.*.*.*", "acme.cdc._messages.*", "acme.cdc._notices.*", "acme.cdc._deadletter"},
			noticeWant: "acme.cdc._notices.phantoms",
		},
		{
			name: "fixed subject", c: Config{Subject: "users.events"}, ev: rowEvent(wire.OpDelete, users), want: "users.events",
			msgWant: "users.events", dead: "users.events._deadletter",
			subjects: []string{"users.events", "users.events._deadletter"}, noticeWant: "users.events",
		},
		{
			name: "fixed with prefix", c: Config{Prefix: "p", Subject: "{prefix}.all"}, ev: rowEvent(wire.OpInsert, users), want: "p.all",
			msgWant: "p.all", dead: "p.all._deadletter",
			subjects: []string{"p.all", "p.all._deadletter"},
		},
		{
			name: "fixed with custom message and dead-letter subjects", c: Config{Subject: "users.events", MessageSubject: "users.msgs.{message_prefix}", DeadLetterSubject: "ops.dead"},
			ev: rowEvent(wire.OpInsert, users), want: "users.events", msgWant: "users.msgs.outbox", dead: "ops.dead",
			subjects: []string{"users.events", "users.msgs.*", "ops.dead"},
		},
		{
			name: "partial tokens", c: Config{Subject: "cdc.{schema}_{table}.v1-{op}"}, ev: rowEvent(wire.OpUpdate, users), want: "cdc.public_users.v1-update",
			msgWant: "postgres._messages.outbox", dead: "postgres._deadletter",
			subjects: []string{"cdc.*.*", "postgres._messages.*", "postgres._notices.*", "postgres._deadletter"},
		},
		{
			name: "prefix of several tokens inside a token", c: Config{Prefix: "a.b", Subject: "{prefix}_x.{table}"}, ev: rowEvent(wire.OpInsert, users), want: "a.b_x.users",
			subjects: []string{"a.b_x.*", "a.b._messages.*", "a.b._notices.*", "a.b._deadletter"}, noticeWant: "a.b._notices.phantoms",
		},
		{
			name: "source", c: Config{Subject: "{source}.{schema}_{table}", MessageSubject: "{prefix}.m.{source}.{message_prefix}"},
			ev: rowEvent(wire.OpInsert, users), want: "app.public_users", msgWant: "postgres.m.app.outbox",
			subjects: []string{"*.*", "postgres.m.*.*", "postgres._notices.*"}, // "*.*" covers the dead letters
		},
		{
			name: "custom message subject", c: Config{MessageSubject: "msgs.{message_prefix}"}, ev: rowEvent(wire.OpInsert, users), want: "postgres.public.users.insert",
			msgWant: "msgs.outbox", subjects: []string{"postgres.*.*.*", "msgs.*", "postgres._notices.*", "postgres._deadletter"},
		},
		{
			name: "hostile names escaped", c: Config{Subject: "x.{schema}.{table}"}, ev: rowEvent(wire.OpInsert, rel("a.b", "*> c")), want: "x.a%2Eb.%2A%3E%20c",
			msgPref: "p.q *", msgWant: "postgres._messages.p%2Eq%20%2A",
		},
		{
			name: "empty names", c: Config{Subject: "x.{schema}{table}"}, ev: rowEvent(wire.OpInsert, rel("", "")), want: "x.%%",
		},
		{
			name: "dead letter covered by rows", c: Config{DeadLetterSubject: "{prefix}.dead.letter.x"}, ev: rowEvent(wire.OpInsert, users), want: "postgres.public.users.insert",
			dead: "postgres.dead.letter.x", subjects: []string{"postgres.*.*.*", "postgres._messages.*", "postgres._notices.*"},
		},
		{
			name: "only messages", c: Config{Ops: []string{"message"}}, ev: msgEvent("outbox"), want: "postgres._messages.outbox",
			subjects: []string{"postgres._messages.*", "postgres._notices.*", "postgres._deadletter"},
		},
		{
			name: "no messages", c: Config{Ops: []string{"insert", "truncate"}}, ev: rowEvent(wire.OpInsert, users), want: "postgres.public.users.insert",
			subjects: []string{"postgres.*.*.*", "postgres._notices.*", "postgres._deadletter"}, noticeWant: "postgres._notices.phantoms",
		},
		{
			name: "unicode and percent", c: Config{Subject: "données.{table}"}, ev: rowEvent(wire.OpInsert, rel("s", "été%")), want: "données.été%25",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustNew(t, tc.c)
			if got := string(r.AppendSubject([]byte("keep:"), tc.ev)); got != "keep:"+tc.want {
				t.Errorf("AppendSubject = %q, want %q", got, "keep:"+tc.want)
			}
			if tc.msgWant != "" {
				p := tc.msgPref
				if p == "" {
					p = "outbox"
				}
				if got := string(r.AppendSubject(nil, msgEvent(p))); got != tc.msgWant {
					t.Errorf("message subject = %q, want %q", got, tc.msgWant)
				}
			}
			if tc.noticeWant != "" {
				if got := string(r.AppendSubject(nil, noticeEvent(wire.NoticePhantoms))); got != tc.noticeWant {
					t.Errorf("notice subject = %q, want %q", got, tc.noticeWant)
				}
			}
			if tc.dead != "" && r.DeadLetter() != tc.dead {
				t.Errorf("DeadLetter() = %q, want %q", r.DeadLetter(), tc.dead)
			}
			if tc.subjects != nil && !slices.Equal(r.Subjects(), tc.subjects) {
				t.Errorf("Subjects() = %q, want %q", r.Subjects(), tc.subjects)
			}
			// Whatever the template, every subject is one the patterns cover.
			all := []string{string(r.AppendSubject(nil, tc.ev)), r.DeadLetter(), string(r.AppendSubject(nil, noticeEvent(wire.NoticeGap)))}
			if slices.Contains(r.Subjects(), r.msg.pattern) {
				all = append(all, string(r.AppendSubject(nil, msgEvent("x.y"))))
			}
			for _, s := range all {
				covered := false
				for _, p := range r.Subjects() {
					covered = covered || Covers(p, s)
				}
				if !covered {
					t.Errorf("subject %q is not covered by %q", s, r.Subjects())
				}
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     Config
		field string
		want  string
	}{
		{"empty token", Config{Subject: "a..b"}, "subject", "empty token"},
		{"trailing dot", Config{Subject: "a.{table}."}, "subject", "empty token"},
		{"unknown placeholder", Config{Subject: "a.{tabel}"}, "subject", `unknown placeholder {tabel}; use {prefix}, {source}, {schema}, {table}, {op}`},
		{"empty placeholder", Config{Subject: "a.{}"}, "subject", "unknown placeholder {}"},
		{"unclosed brace", Config{Subject: "a.{table"}, "subject", "unbalanced '{'"},
		{"nested brace", Config{Subject: "a.{ta{ble}"}, "subject", "unbalanced '{'"},
		{"stray closing brace", Config{Subject: "a.table}"}, "subject", "unbalanced '}'"},
		{"brace across tokens", Config{Subject: "a.{sch.ema}"}, "subject", "unbalanced"},
		{"star", Config{Subject: "a.*"}, "subject", "wildcards"},
		{"gt", Config{Subject: "a.>"}, "subject", "wildcards"},
		{"star in token", Config{Subject: "a.b*"}, "subject", "wildcards"},
		{"space", Config{Subject: "a.b c"}, "subject", "whitespace"},
		{"tab", Config{Subject: "a.\tb"}, "subject", "whitespace"},
		{"control", Config{Subject: "a.b\x01"}, "subject", "control"},
		{"not UTF-8", Config{Subject: "a.\xff"}, "subject", "UTF-8"},
		{"leading dollar", Config{Subject: "$SYS.x"}, "subject", "reserved by NATS"},
		{"leading schema", Config{Subject: "{schema}.{table}"}, "subject", "must not start with {schema}"},
		{"leading table", Config{Subject: "{table}_x.y"}, "subject", "must not start with {table}"},
		{"message placeholder in row subject", Config{Subject: "a.{message_prefix}"}, "subject", "{message_prefix} has no value here; use {prefix}, {source}, {schema}, {table}, {op}"},
		{"schema in message subject", Config{MessageSubject: "m.{schema}"}, "message_subject", "{schema} has no value here; use {prefix}, {source}, {message_prefix}"},
		{"op in message subject", Config{MessageSubject: "m.{op}"}, "message_subject", "{op} has no value here"},
		{"leading message prefix", Config{MessageSubject: "{message_prefix}.m"}, "message_subject", "must not start with {message_prefix}"},
		{"bad message subject", Config{MessageSubject: "m..x"}, "message_subject", "empty token"},
		{"placeholder in dead letter", Config{DeadLetterSubject: "dl.{table}"}, "dead_letter_subject", "{table} has no value here; use {prefix}"},
		{"wildcard in dead letter", Config{DeadLetterSubject: "dl.>"}, "dead_letter_subject", "wildcards"},
		{"bad prefix", Config{Prefix: "a b"}, "prefix", "whitespace"},
		{"dollar prefix", Config{Prefix: "$JS"}, "prefix", "reserved"},
		{"prefix on raw", Config{Prefix: "pgjet.raw"}, "prefix", "prefix pgjet.raw makes subjects that overlap the raw subjects pgjet.raw.>"},
		{"prefix above raw", Config{Prefix: "pgjet"}, "prefix", "overlap the raw subjects"},
		{"prefix inside raw", Config{Prefix: "pgjet.raw.x"}, "prefix", "overlap the raw subjects"},
		{"subject on raw", Config{Subject: "pgjet.raw.{table}"}, "subject", "subjects pgjet.raw.* overlap the raw subjects"},
		{"wildcard subject reaching raw", Config{Subject: "{source}.{source}.{table}"}, "subject", "subjects *.*.* overlap"},
		{"subject with prefix on raw", Config{Prefix: "pgjet.raw", Subject: "{prefix}.{table}"}, "prefix", "overlap"},
		{"message subject on raw", Config{MessageSubject: "pgjet.raw.{message_prefix}"}, "message_subject", "overlap"},
		{"dead letter on raw", Config{DeadLetterSubject: "pgjet.raw.dead"}, "dead_letter_subject", "overlap"},
		{"dead letter on raw, prefix unused", Config{Prefix: "pgjet", Subject: "{prefix}.events", DeadLetterSubject: "pgjet.raw.dead"}, "dead_letter_subject", "overlap"},
		{"fixed subject on raw", Config{Subject: "pgjet.raw.events"}, "subject", "overlap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.c)
			if err == nil {
				t.Fatal("New succeeded")
			}
			fes := fieldErrors(t, err)
			found := false
			for _, fe := range fes {
				if fe.Field != tc.field {
					t.Errorf("unexpected error: %v", fe)
					continue
				}
				found = found || strings.Contains(fe.Err.Error(), tc.want)
			}
			if !found {
				t.Errorf("got %v, want %s: ...%s...", err, tc.field, tc.want)
			}
		})
	}
}

// A name from the database can never add tokens, wildcards or whitespace.
func TestHostileNamesStayOneToken(t *testing.T) {
	r := mustNew(t, Config{Subject: "x.{schema}.{table}.{source}"})
	for _, name := range []string{"", ".", "..", "*", ">", "a b", "a\tb", "a\nb", "\x00", "%2E", "\xff\xfe", "a\u00a0b", "a\u2028b", "$SYS"} {
		ev := rowEvent(wire.OpInsert, rel(name, name))
		s := string(r.AppendSubject(nil, ev))
		toks := strings.Split(s, ".")
		if len(toks) != 4 {
			t.Errorf("name %q: subject %q has %d tokens", name, s, len(toks))
		}
		for _, tok := range toks {
			if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
				t.Errorf("name %q: subject %q has a bad token %q", name, s, tok)
			}
		}
	}
}
