package check

import (
	"encoding/json"
	"strings"
	"testing"
)

func stateEv(op, key, after string, unchanged ...string) Event {
	e := Event{Op: op, Schema: "public", Table: "t", LSN: "0/1", Key: json.RawMessage(key), Unchanged: unchanged}
	if after != "" {
		e.After = json.RawMessage(after)
	}
	return e
}

// A consumer keeping the last event per key: reads and changes in stream
// order give the table; a moved key, unchanged TOAST and truncates count.
func TestRebuild(t *testing.T) {
	events := []Event{
		stateEv("read", `{"id":1}`, `{"id":1,"v":"a","big":"x"}`),
		stateEv("read", `{"id":2}`, `{"id":2,"v":"b","big":"y"}`),
		stateEv("update", `{"id":1}`, `{"id":1,"v":"a2"}`, "big"),
		stateEv("update", `{"id":2}`, `{"id":3,"v":"b","big":"y"}`), // key changed: old key in "key"
		stateEv("insert", `{"id":4}`, `{"id":4,"v":"d","big":null}`),
		stateEv("delete", `{"id":4}`, ""),
		{Op: "truncate", Schema: "public", Table: "other", LSN: "0/1"},
	}
	s, err := Rebuild(events)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]json.RawMessage{
		`{"id":1}`: json.RawMessage(`{"id": 1, "v": "a2", "big": "x"}`),
		`{"id":3}`: json.RawMessage(`{"id": 3, "v": "b", "big": "y"}`),
	}
	if d := CompareState(want, s["public.t"], 10); len(d) > 0 {
		t.Fatalf("rebuilt state differs:\n%s", strings.Join(d, "\n"))
	}
	// And the comparison can fail: a stale value, a missing and an extra row.
	want[`{"id":1}`] = json.RawMessage(`{"id": 1, "v": "a3", "big": "x"}`)
	want[`{"id":9}`] = json.RawMessage(`{"id": 9}`)
	delete(want, `{"id":3}`)
	if d := CompareState(want, s["public.t"], 10); len(d) != 3 {
		t.Fatalf("want 3 differences, got %q", d)
	}
	changes, reads := SplitReads(events)
	if len(changes) != 5 || len(reads) != 2 {
		t.Fatalf("split: %d changes, %d reads", len(changes), len(reads))
	}
}
