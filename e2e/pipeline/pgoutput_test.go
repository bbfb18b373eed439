package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Invariant: the embedded example (deploy/pipeline/embedded.yaml, the
// subjects of pgoutput-stream) runs as committed: every committed change
// arrives once, in commit order, on postgres.<schema>.<table>.<op>; the
// transaction events bracket exactly the changes of their transaction and
// count them; a relation event with the table's columns comes before the
// first change of every table; and the stdout sink prints text lines.
func TestEmbeddedPipelineInPgoutputStreamShape(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders")
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	file := harness.RepoFile(t, "deploy/pipeline/embedded.yaml")
	env := []string{"POSTGRES_DSN=" + e.pg.DSN(""), "PGJET_DATA=" + t.TempDir(), "PGJET_LISTEN=" + listen}
	col := harness.StartProcess(t, "pgjet-collector", []string{"--config", file}, env)
	if !col.WaitForLog("msg=streaming", 30*time.Second) {
		t.Fatal("collector did not start streaming")
	}
	rt := harness.StartProcess(t, "pgjet-router", []string{"--config", file}, env)
	for _, id := range []string{"events", "console"} {
		if !rt.WaitForLog("msg=relaying route="+id+" ", 30*time.Second) {
			t.Fatalf("route %s did not start relaying", id)
		}
	}
	e.mixed(1)
	e.exec(`ALTER TABLE orders ADD COLUMN coupon text`)
	e.exec(`INSERT INTO orders (amount, coupon) VALUES (1.50, 'SPRING')`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect("nats://" + listen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	type doc struct {
		Op     string `json:"op"`
		LSN    string `json:"lsn"`
		Xid    uint32 `json:"xid"`
		Schema string `json:"schema"`
		Table  string `json:"table"`
		Events int    `json:"events"`
		Tables []struct {
			Schema, Table string
			Events        int
		} `json:"tables"`
		Columns []struct{ Name string } `json:"columns"`
	}
	var events []check.Event
	var open *doc // the transaction between its begin and commit events
	inTx, perTable := 0, map[string]int{}
	announced := map[string][]string{} // table: columns of its last relation event
	msgs := readStream(ctx, t, js, "postgres_replication", len(changes))
	for _, m := range msgs {
		var d doc
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			t.Fatalf("%s: %v", m.Subject(), err)
		}
		table := d.Schema + "." + d.Table
		switch d.Op {
		case "begin":
			if open != nil || m.Subject() != "postgres.transactions.begin.event" {
				t.Fatalf("begin on %s inside the transaction at %v", m.Subject(), open)
			}
			open, inTx, perTable = &d, 0, map[string]int{}
		case "commit":
			if open == nil || d.LSN != open.LSN || d.Xid != open.Xid || m.Subject() != "postgres.transactions.commit.event" {
				t.Fatalf("commit %+v on %s does not close the transaction at %+v", d, m.Subject(), open)
			}
			if d.Events != inTx {
				t.Errorf("commit at %s counts %d events, its transaction had %d", d.LSN, d.Events, inTx)
			}
			for _, tc := range d.Tables {
				if perTable[tc.Schema+"."+tc.Table] != tc.Events {
					t.Errorf("commit at %s counts %d events of %s.%s, want %d", d.LSN, tc.Events, tc.Schema, tc.Table, perTable[tc.Schema+"."+tc.Table])
				}
			}
			open = nil
		case "relation":
			if m.Subject() != "postgres.public."+d.Table+".relation" {
				t.Errorf("relation event on %s", m.Subject())
			}
			var cols []string
			for _, c := range d.Columns {
				cols = append(cols, c.Name)
			}
			announced[table] = cols
		default:
			if open == nil || d.LSN != open.LSN {
				t.Fatalf("%s at %s outside its transaction's begin and commit events", d.Op, d.LSN)
			}
			ev, err := check.ParseEvent(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			ev.MsgID, ev.Subject = m.Headers().Get(jetstream.MsgIDHeader), m.Subject()
			events = append(events, ev)
			inTx++
			perTable[table]++
			cols, ok := announced[table]
			if !ok {
				t.Fatalf("%s of %s before any relation event of it", d.Op, table)
			}
			if d.Op == "insert" {
				var row struct{ After map[string]json.RawMessage }
				if err := json.Unmarshal(m.Data(), &row); err != nil || len(row.After) != len(cols) {
					t.Errorf("insert into %s with %d columns, its last relation event announced %v", table, len(row.After), cols)
				}
			}
		}
	}
	if open != nil {
		t.Errorf("the transaction at %s has no commit event", open.LSN)
	}
	if got := strings.Join(announced["public.orders"], ","); !strings.HasSuffix(got, ",coupon") {
		t.Errorf("orders' last relation event has columns %s: the added column was not announced", got)
	}
	expect(t, "postgres_replication", changes, events)
	if !rt.WaitForLog("INSERT public.orders", 30*time.Second) {
		t.Error("the stdout sink printed no text line")
	}
}
