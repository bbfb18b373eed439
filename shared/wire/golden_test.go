package wire

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "write testdata/raw-v<Version>.golden")

// The encoding of a raw message is pinned byte for byte, per format
// version: a change to any struct (a field added, moved or retyped) or to
// the encoder changes the bytes, and this test then fails until Version is
// bumped and the new version's golden file written (go test -update):
// routers of the old version refuse the new records by their version
// instead of misreading them.
// goldenSample is the message the golden files hold: every field of
// every struct set.
func goldenSample() *Message {
	m := catalogSample()                         // version 3: changes' and commits' LSNs, the catalog's facts
	m.Txs[0].Changes[0].New[0].Kind = KindBinary // every value kind, an unchanged TOAST value included
	m.Txs = append(m.Txs, Tx{Xid: 12, CommitLSN: 0x3000, EndLSN: 0x3010, Fragment: 1, FirstChange: 5, PieceOffset: 3, PieceTotal: 9,
		Changes: []Change{{Op: OpInsert, Rel: 0, Content: []byte("piece")}}})
	// Version 3: a transaction of snapshot reads; version 4: the 64-bit id
	// of the transaction that read them (epoch 1).
	m.Txs = append(m.Txs, Tx{Xid: 734, CommitLSN: 0x3011, CommitTime: 1700000000000000, Final: true,
		Snapshot: &Snapshot{Kind: SnapshotIncremental, ID: "b-1/r/0", Marks: SnapshotFirst | SnapshotLast, Sinks: []string{"search"}, Xid: 1<<32 | 734},
		Changes:  []Change{{Op: OpRead, Rel: 0, New: []Value{{Kind: KindText, Data: []byte("7")}}}}})
	return m
}

func TestGoldenBytes(t *testing.T) {
	m := goldenSample()
	got, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", fmt.Sprintf("raw-v%d.golden", Version))
	dump := []byte(hex.Dump(got))
	if *update {
		if err := os.WriteFile(path, dump, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no golden bytes for format version %d: %v (a new version: go test -update)", Version, err)
	}
	if !bytes.Equal(dump, want) {
		t.Fatalf("the raw format's bytes changed, but Version is still %d: bump Version, then go test -update writes %s\ngot:\n%s",
			Version, filepath.Join("testdata", fmt.Sprintf("raw-v%d.golden", Version+1)), dump)
	}
	// And the golden bytes still read back as the message.
	b, err := hex.DecodeString(hexOf(want))
	if err != nil {
		t.Fatal(err)
	}
	var back Message
	if err := Unmarshal(b, &back); err != nil || !bytes.Equal(b, got) {
		t.Fatalf("golden bytes do not read back: %v", err)
	}
}

// hexOf takes the hex digits of a hex.Dump back out of it.
func hexOf(dump []byte) string {
	var out []byte
	for _, line := range bytes.Split(dump, []byte("\n")) {
		if len(line) < 10 {
			continue
		}
		// "00000000  xx xx ... |ascii|": offset, then up to 16 bytes.
		fields := line[10:]
		if i := bytes.IndexByte(fields, '|'); i >= 0 {
			fields = fields[:i]
		}
		out = append(out, bytes.ReplaceAll(bytes.TrimSpace(fields), []byte(" "), nil)...)
	}
	return string(out)
}

// Rolling upgrade, new reader first: version 3's golden bytes (written
// by the version-3 encoder) decode as the sample without what version 4
// added.
func TestReadsVersion3(t *testing.T) {
	dump, err := os.ReadFile("testdata/raw-v3.golden")
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(hexOf(dump))
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := goldenSample()
	want.Version = 3
	last := &want.Txs[len(want.Txs)-1]
	last.Xid, last.Snapshot.Xid = 0, 0
	if !reflect.DeepEqual(want, &got) {
		t.Fatalf("version 3 decodes differently:\nwant %+v\ngot  %+v", want, &got)
	}
}
