package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
)

// The raw stream of issue 20's bad days: a record that is not a pgjet
// record (here published on a raw subject of its own by something with the
// rights to), then the same after an operator deleted it.
//
// Invariant: the router stops at the record, in one line naming its
// sequence, subject and way past; `check` reports it; told explicitly (its
// bytes dead-lettered, or, once deleted, the gap accepted), the router goes
// past, logs it, and every change committed meanwhile arrives exactly once,
// in commit order.
func TestHoleInTheRawStream(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events", "public.bulk")
	e.collector()
	e.router()
	e.mixed(1)
	e.verifyTables(time.Minute)

	ctx := context.Background()
	_, js := e.nats.Connect(t)
	garbage := []byte("not a raw record")
	stray := func() uint64 {
		ack, err := js.Publish(ctx, "pgjet.raw.stray", garbage)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	seq := stray()
	e.mixed(2) // committed while the router is stopped at the record
	e.routerFails(fmt.Sprintf("raw record %d of stream PGJET_RAW (subject pgjet.raw.stray) cannot be decoded", seq), fmt.Sprintf("--dead-letter-raw %d", seq))
	e.checkFails(fmt.Sprintf("raw records %d cannot be decoded", seq), fmt.Sprintf("--dead-letter-raw %d", seq))

	// Its bytes to the dead-letter subject.
	rt := e.router("--dead-letter-raw", strconv.FormatUint(seq, 10))
	if !rt.WaitForLog("sent with its bytes to the dead-letter subject, as --dead-letter-raw says", 30*time.Second) {
		t.Fatalf("no dead letter logged:\n%s", rt.Log())
	}
	e.verifyTables(time.Minute)
	dl, err := js.Stream(ctx, "PGJET_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.GetLastMsgForSubject(ctx, "postgres._deadletter")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		RawSeq     uint64 `json:"raw_seq"`
		RawSubject string `json:"raw_subject"`
		Raw        []byte `json:"raw"`
	}
	if err := json.Unmarshal(m.Data, &doc); err != nil || doc.RawSeq != seq || doc.RawSubject != "pgjet.raw.stray" || string(doc.Raw) != string(garbage) {
		t.Errorf("dead letter %s (%v): want the record's sequence, subject and bytes", m.Data, err)
	}

	// Another one, which an operator deletes once the router stopped at it.
	seq = stray()
	if !rt.WaitForLog(fmt.Sprintf("raw record %d of stream PGJET_RAW", seq), 30*time.Second) {
		t.Fatalf("router did not stop at raw record %d:\n%s", seq, rt.Log())
	}
	<-rt.Done()
	raw, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.DeleteMsg(ctx, seq); err != nil {
		t.Fatal(err)
	}
	e.mixed(3)
	gap := fmt.Sprintf("--accept-gap %d", seq)
	for range 2 { // a restart does not pass it either
		e.routerFails(fmt.Sprintf("raw stream PGJET_RAW: records %d (1) were deleted from the stream", seq), gap)
	}
	e.checkFails(fmt.Sprintf("raw records %d were deleted from the stream", seq), gap)
	rt = e.router("--accept-gap", strconv.FormatUint(seq, 10))
	if !rt.WaitForLog("going past missing raw records, as --accept-gap says", 30*time.Second) {
		t.Fatalf("no accepted gap logged:\n%s", rt.Log())
	}
	e.verifyTables(time.Minute)
}

// A copy of the raw record of a 10-row transaction, published again on its
// subject after the output's duplicate window (issue 20's "Doubled:
// positions going backwards").
//
// Invariant: no row is stored twice: the router skips the copy with a
// warning and counts it in pgjet_router_backwards_total; the changes
// committed before and after arrive exactly once, in commit order.
func TestCopyOfAnOldRawRecordIsNotRelayedTwice(t *testing.T) {
	e := newEnv(t, mixedSchema, "public.users", "public.orders", "public.events", "public.bulk")
	e.collector()
	rt := e.router("--output-duplicate-window", "1s", "--metrics", "127.0.0.1:0")
	base := metricsURL(t, rt, "msg=\"serving metrics\" url=")
	e.exec(`INSERT INTO bulk SELECT g, 'row ' || g FROM generate_series(1, 10) g`)
	e.verifyTables(time.Minute)

	ctx := context.Background()
	_, js := e.nats.Connect(t)
	raw, err := js.Stream(ctx, "PGJET_RAW")
	if err != nil {
		t.Fatal(err)
	}
	last, err := raw.GetLastMsgForSubject(ctx, "pgjet.raw.e2e")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the output's duplicate window: it cannot catch the copy
	if _, err := js.Publish(ctx, last.Subject, last.Data); err != nil {
		t.Fatal(err)
	}
	if !rt.WaitForLog("raw record holds transactions at or before what this route relayed of their source already", 30*time.Second) {
		t.Fatalf("no warning about the copy:\n%s", rt.Log())
	}
	waitMetric(t, base, "pgjet_router_backwards_total", `route="pgjet-router"`, 10*time.Second, func(v float64) bool { return v >= 1 })
	e.mixed(1)
	e.verifyTables(time.Minute)
}

// routerFails runs a router that must stop with exit status 1 and one line
// holding each of want.
func (e *env) routerFails(want ...string) {
	e.t.Helper()
	p := harness.StartProcess(e.t, "pgjet-router", []string{"--nats", e.nats.URL(), "--output-persist", "async"}, nil)
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		e.t.Fatalf("router did not stop:\n%s", p.Log())
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		e.t.Fatalf("router: %v, want exit status 1:\n%s", err, p.Log())
	}
	var line string
	for _, l := range strings.Split(p.Log(), "\n") {
		if strings.HasPrefix(l, "pgjet-router: ") {
			line = l
		}
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			e.t.Errorf("router's last line %q does not say %q", line, w)
		}
	}
}

// checkFails runs `pgjet-router check`, which must exit 1 with a FAIL line
// holding each of want.
func (e *env) checkFails(want ...string) {
	e.t.Helper()
	out, code := runCmd(e.t, nil, "pgjet-router", "check", "--nats", e.nats.URL(), "--output-persist", "async")
	if code != 1 {
		e.t.Errorf("check: exit status %d, want 1:\n%s", code, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "FAIL") {
			continue
		}
		found := true
		for _, w := range want {
			found = found && strings.Contains(l, w)
		}
		if found {
			return
		}
	}
	e.t.Errorf("check has no FAIL line saying %q:\n%s", want, out)
}
