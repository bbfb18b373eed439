package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/check"
	"github.com/pgjet/pgjet/e2e/harness"
)

// Invariant: two routers each publishing their partition (--partition 0/2
// and 1/2) of one route share its output: every committed change arrives
// exactly once, with Postgres's values, each row's events in commit order
// (order across rows of two partitions is not kept, by design), also when
// one partition's router is killed -9 mid-workload and restarted.
func TestPartitionedRoutersShareAnOutput(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events")
	e.collector()
	part := func(p string) *harness.Proc { return e.router("--partition", p) }
	p0, _ := part("0/2"), part("1/2")
	e.mixed(1)
	p0.Kill()
	e.mixed(2)
	part("0/2")
	e.mixed(3)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	changes, err := check.ReadAudit(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	_, js := e.nats.Connect(t)
	events, err := check.Drain(ctx, js, "PGJET_EVENTS", "postgres.>", len(changes), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := check.Check(changes, events)
	t.Logf("%s", r.String())
	if r.Committed == 0 || r.Lost > 0 || r.Duplicated > 0 || r.Extra > 0 || r.ValueMismatches > 0 {
		t.Fatalf("invariant violated: %s", r.String())
	}
	type pos struct {
		lsn   uint64
		index uint64
	}
	last := map[string]pos{} // by table and key
	for _, ev := range events {
		if string(ev.Key) == "null" || len(ev.Key) == 0 {
			continue // no row key: ordered by table within its partition only
		}
		lsn, err := check.ParseLSN(ev.LSN)
		if err != nil {
			t.Fatal(err)
		}
		k := ev.Schema + "." + ev.Table + string(ev.Key)
		p := pos{lsn, ev.Index}
		if prev, ok := last[k]; ok && (p.lsn < prev.lsn || p.lsn == prev.lsn && p.index <= prev.index) {
			t.Errorf("%s: event at %s/%d after one at %d/%d", k, ev.LSN, ev.Index, prev.lsn, prev.index)
		}
		last[k] = p
	}
	t.Logf("%d rows; order across partitions: %d events after a later change of their table", len(last), r.OutOfOrder)
}
