package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
)

// hostileTables are [schema, table] pairs whose names try to break subjects:
// dots, wildcards, spaces, '%' (the escape character), control characters,
// unicode whitespace, names that collide once dots are joined, and reserved
// tokens.
var hostileTables = [][2]string{
	{"we.ird *>", "tab.le *> ünï 🎉"},
	{"a.b", "c"},
	{"a", "b.c"},
	{"%2E", "%"},
	{"public", "ctl\x01\x1f\x7f tab\u2028\u00a0end"},
	{"_messages", "_deadletter"},
	{"public", "$SYS"},
	{"public", "arrays"},
}

func quoteTable(st [2]string) string { return pgx.Identifier{st[0], st[1]}.Sanitize() }

// Invariant: hostile names and content never break a subject, a header or
// the JSON: every output subject is prefix.schema.table.op with valid,
// escaped tokens that map back to the names, headers are clean single-line
// text, payloads are valid UTF-8 JSON, and every value equals Postgres's own
// rendering. Text with control characters, unicode edge cases, huge arrays
// (100,000 elements); and, in a SQL_ASCII database, bytes that are not
// UTF-8 in a table name and in values.
func TestHostileContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, envConfig{})
	if err := check.InstallAudit(ctx, e.conn); err != nil {
		t.Fatal(err)
	}
	var idents []string
	for _, st := range hostileTables {
		if st[0] != "public" {
			e.exec(`CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{st[0]}.Sanitize())
		}
		q := quoteTable(st)
		cols := `id int PRIMARY KEY, "col.dot" text, "sp ace *>" text, "ünï" jsonb, "q""uote" text[]`
		if st[1] == "arrays" {
			cols = `id int PRIMARY KEY, ints int[], texts text[], nested int[][]`
		}
		e.exec(fmt.Sprintf(`CREATE TABLE %s (%s)`, q, cols))
		e.exec(fmt.Sprintf(`CREATE TRIGGER pgjet_audit_row AFTER INSERT OR UPDATE OR DELETE ON %s
			FOR EACH ROW EXECUTE FUNCTION public.pgjet_audit_row()`, q))
		idents = append(idents, q)
	}
	e.exec(`CREATE PUBLICATION ` + e.publication + ` FOR TABLE ` + strings.Join(idents, ", "))

	// The SQL_ASCII database: Postgres stores any bytes there.
	e.exec(`CREATE DATABASE hostile_ascii WITH ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`)
	ascii := e.connect(ctx, "hostile_ascii")
	for _, sql := range []string{
		// A table named "bad<FF><FE>name" and values with invalid UTF-8,
		// made server-side so no client validates them.
		`DO $$ BEGIN EXECUTE format('CREATE TABLE public.%I (id int PRIMARY KEY, v text)', 'bad' || E'\xff\xfe' || 'name'); END $$`,
		`CREATE PUBLICATION ascii FOR ALL TABLES`,
	} {
		if _, err := ascii.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", firstLine(sql), err)
		}
	}

	e.collector()
	asciiCol := harness.StartProcess(t, "pgjet-collector", []string{
		"--dsn", e.pg.DSN("hostile_ascii"), "--slot", "ascii", "--publication", "ascii", "--nats", e.colNATS, "--source", "ascii",
	}, nil)
	if !asciiCol.WaitForLog("msg=streaming", 60*time.Second) {
		t.Fatalf("collector of the SQL_ASCII database did not stream:\n%s", tail(asciiCol.Log(), 20))
	}
	e.router()

	// Text nasties: control characters, escapes, quotes, unicode edge cases.
	nasty := "ctl \x01\x02\x1b[31mred\x1b[0m \x7f tab\t nl\n cr\r bs\\ quote\" slash/ <script>&amp;" +
		" rtl \u202e مرحبا combining e\u0301 ls\u2028ps\u2029 bom\ufeff zwj 👩\u200d👩\u200d👧 max \U0010ffff replacement \ufffd"
	for i, st := range hostileTables {
		q := quoteTable(st)
		if st[1] == "arrays" {
			e.exec(`INSERT INTO ` + q + ` (id, ints) SELECT 1, array_agg(g) FROM generate_series(1, 100000) g`)
			e.exec(`INSERT INTO ` + q + ` (id, texts) SELECT 2, array_agg(CASE WHEN g % 1000 = 0 THEN NULL ELSE 'x' || (g % 10) END) FROM generate_series(1, 100000) g`)
			e.exec(`INSERT INTO ` + q + ` (id, nested) SELECT 3, array_agg(ARRAY[g, -g]) FROM generate_series(1, 50000) g`)
			e.exec(`UPDATE ` + q + ` SET ints = ints[1:99999] || -1 WHERE id = 1`)
			continue
		}
		e.exec(`INSERT INTO `+q+` VALUES ($1, $2, $3, $4, $5)`, i, nasty, "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 "+st[1],
			`{"k.e*y >": "v\u0001\u001f", "": [1, "\"", {"\u2028": null}], "big": 1e400}`,
			[]string{"a,b", `c"d`, `e\f`, "", "{}", "NULL", "sp ace", nasty})
		e.exec(`INSERT INTO `+q+` (id, "col.dot") VALUES ($1, NULL)`, i+100)
		e.exec(`UPDATE `+q+` SET "col.dot" = "col.dot" || E'\x01 updated' WHERE id = $1`, i)
		e.exec(`DELETE FROM `+q+` WHERE id = $1`, i+100)
	}
	asciiWrites := []string{
		`INSERT INTO public."bad` + "\xff\xfe" + `name" VALUES (1, 'plain ascii')`,
		`INSERT INTO public."bad` + "\xff\xfe" + `name" VALUES (2, E'abc\xff\xc3\x28xyz')`,
		`UPDATE public."bad` + "\xff\xfe" + `name" SET v = v || E'\x80end' WHERE id = 2`,
		`DELETE FROM public."bad` + "\xff\xfe" + `name" WHERE id = 1`,
	}
	for _, sql := range asciiWrites {
		// The statement text itself must be valid UTF-8 for the client:
		// build the name server-side.
		sql = strings.ReplaceAll(sql, `public."bad`+"\xff\xfe"+`name"`, `public.%I`)
		stmt := fmt.Sprintf(`DO $$ BEGIN EXECUTE format(%s, 'bad' || E'\xff\xfe' || 'name'); END $$`, quoteLiteral(sql))
		if _, err := ascii.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	// Values equal Postgres's rendering (the UTF8 database's audit).
	// The SQL_ASCII database's events have no audit here: leave them out.
	r := e.reportSource("hostile names and content", e.source)
	if !r.OK() {
		t.Errorf("hostile content: invariant violated: %s", r.String())
	}
	alive(t, asciiCol, "collector of the SQL_ASCII database")
	alive(t, e.col, "collector")
	alive(t, e.rt, "router")

	// Every message: subject, headers, JSON.
	msgs := e.allEvents(ctx, 4*len(hostileTables)+len(asciiWrites))
	subjects := map[string][2]string{}
	var asciiEvents []check.Event
	for _, m := range msgs {
		for _, p := range validateMessage(m) {
			t.Errorf("message %d on %q: %s", m.seq, m.subject, p)
		}
		var ev check.Event
		if err := json.Unmarshal(m.data, &ev); err != nil {
			continue // reported above
		}
		toks := strings.Split(m.subject, ".")
		if len(toks) == 4 {
			key := toks[1] + "." + toks[2]
			if prev, ok := subjects[key]; ok && prev != [2]string{ev.Schema, ev.Table} {
				t.Errorf("tables %q and %q share subject tokens %q", prev, [2]string{ev.Schema, ev.Table}, key)
			}
			subjects[key] = [2]string{ev.Schema, ev.Table}
			if ev.Source != "ascii" {
				if s, ok := unescapeToken(toks[1]); !ok || s != ev.Schema {
					t.Errorf("subject %q: schema token %q does not map back to %q", m.subject, toks[1], ev.Schema)
				}
				if s, ok := unescapeToken(toks[2]); !ok || s != ev.Table {
					t.Errorf("subject %q: table token %q does not map back to %q", m.subject, toks[2], ev.Table)
				}
			}
		}
		if ev.Source == "ascii" {
			ev.Subject = m.subject
			asciiEvents = append(asciiEvents, ev)
		}
	}
	t.Logf("%d messages, %d distinct tables by subject", len(msgs), len(subjects))

	// SQL_ASCII: every change arrives; the name's bad bytes are escaped in
	// the subject; values keep their valid parts.
	if len(asciiEvents) != len(asciiWrites) {
		t.Errorf("SQL_ASCII database: %d events, want %d (one per change)", len(asciiEvents), len(asciiWrites))
	}
	for _, ev := range asciiEvents {
		if !strings.Contains(ev.Subject, ".bad%FF%FEname.") {
			t.Errorf("SQL_ASCII event on %q: want the table's invalid bytes escaped as bad%%FF%%FEname", ev.Subject)
		}
		row := ev.After
		if ev.Op == "delete" {
			row = ev.Before
		}
		var vals map[string]any
		if err := json.Unmarshal(row, &vals); err != nil {
			t.Errorf("SQL_ASCII %s event: row %s: %v", ev.Op, row, err)
			continue
		}
		v, _ := vals["v"].(string)
		t.Logf("SQL_ASCII %s event on %s: v = %+q", ev.Op, ev.Subject, v)
		switch ev.Op {
		case "insert", "update":
			if id, _ := vals["id"].(float64); id == 2 && (!strings.HasPrefix(v, "abc") || !strings.Contains(v, "xyz")) {
				t.Errorf("SQL_ASCII %s event: value %q lost the valid text around the invalid bytes", ev.Op, v)
			} else if id == 1 && v != "plain ascii" {
				t.Errorf("SQL_ASCII %s event: value %q, want %q", ev.Op, v, "plain ascii")
			}
			if ev.Op == "update" && !strings.HasSuffix(v, "end") {
				t.Errorf("SQL_ASCII update event: value %q lost its end", v)
			}
		}
	}
	t.Logf("SUMMARY hostile content, SQL_ASCII database: %d of %d changes delivered", len(asciiEvents), len(asciiWrites))
}

type rawMsg struct {
	seq     uint64
	subject string
	header  map[string][]string
	data    []byte
}

// allEvents reads every message of the output stream, whatever its subject,
// with its headers; at least want of them.
func (e *env) allEvents(ctx context.Context, want int) []rawMsg {
	e.t.Helper()
	_, js := e.nats.Connect(e.t)
	cons, err := js.OrderedConsumer(ctx, "PGJET_EVENTS", jetstream.OrderedConsumerConfig{})
	must(e.t, err)
	var out []rawMsg
	for {
		wait := 2 * time.Second
		if len(out) < want {
			wait = 30 * time.Second
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(wait))
		if err != nil {
			return out
		}
		md, _ := msg.Metadata()
		out = append(out, rawMsg{seq: md.Sequence.Stream, subject: msg.Subject(), header: msg.Headers(), data: msg.Data()})
	}
}

// validateMessage lists what is wrong with an output message's subject,
// headers and payload.
func validateMessage(m rawMsg) []string {
	var probs []string
	if !utf8.ValidString(m.subject) {
		probs = append(probs, "subject is not UTF-8")
	}
	toks := strings.Split(m.subject, ".")
	if toks[0] != "postgres" {
		probs = append(probs, "subject does not start with the prefix")
	}
	if len(toks) != 4 {
		probs = append(probs, fmt.Sprintf("subject has %d tokens, want 4 (prefix.schema.table.op)", len(toks)))
	}
	for _, tok := range toks {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, "*>") {
			probs = append(probs, fmt.Sprintf("bad token %q", tok))
		}
		for _, r := range tok {
			if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
				probs = append(probs, fmt.Sprintf("token %q holds %U", tok, r))
			}
		}
	}
	if len(m.header["Nats-Msg-Id"]) != 1 || m.header["Nats-Msg-Id"][0] == "" {
		probs = append(probs, fmt.Sprintf("Nats-Msg-Id header: %q", m.header["Nats-Msg-Id"]))
	}
	for k, vs := range m.header {
		for _, s := range append([]string{k}, vs...) {
			if !utf8.ValidString(s) {
				probs = append(probs, fmt.Sprintf("header %q is not UTF-8", k))
			}
			for _, r := range s {
				if r < ' ' || r == 0x7f {
					probs = append(probs, fmt.Sprintf("header %q holds control character %U", k, r))
				}
			}
		}
	}
	if !utf8.Valid(m.data) {
		probs = append(probs, "payload is not UTF-8")
	}
	if !json.Valid(m.data) {
		probs = append(probs, fmt.Sprintf("payload is not JSON: %.200q", m.data))
	} else {
		var ev check.Event
		_ = json.Unmarshal(m.data, &ev)
		if len(toks) == 4 && toks[3] != ev.Op {
			probs = append(probs, fmt.Sprintf("subject's op %q, event's %q", toks[3], ev.Op))
		}
	}
	return probs
}

// unescapeToken reverses the router's subject escaping (%XX per byte; a
// lone "%" is the empty string).
func unescapeToken(tok string) (string, bool) {
	if tok == "%" {
		return "", true
	}
	var b []byte
	for i := 0; i < len(tok); i++ {
		if tok[i] != '%' {
			b = append(b, tok[i])
			continue
		}
		if i+2 >= len(tok) {
			return "", false
		}
		n, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b = append(b, byte(n))
		i += 2
	}
	return string(b), true
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
