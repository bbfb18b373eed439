package wire

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Mirrors of the hand-coded types, encoded by msgpack's reflection: the
// definition of the format the codecs must reproduce byte for byte.
type valueR struct {
	_msgpack struct{} `msgpack:",as_array"`
	Kind     byte
	Data     []byte
}

type changeR struct {
	_msgpack        struct{} `msgpack:",as_array"`
	Op              Op
	Rel             int32
	OldKind         byte
	Old             []valueR
	New             []valueR
	TruncateRels    []int32
	TruncateOptions uint8
	Prefix          string
	Content         []byte
	Transactional   bool
	LSN             uint64
}

type txR struct {
	_msgpack      struct{} `msgpack:",as_array"`
	Xid           uint32
	CommitLSN     uint64
	EndLSN        uint64
	CommitTime    int64
	Origin        string
	Fragment      uint32
	Final         bool
	FirstChange   uint64
	Changes       []changeR
	PieceOffset   uint64
	PieceTotal    uint64
	Snapshot      *Snapshot
	PrevCommitLSN uint64
}

type messageR struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Version   int
	Source    Source
	Relations []Relation
	Txs       []txR
}

func mirrorValues(vs []Value) []valueR {
	if vs == nil {
		return nil
	}
	out := make([]valueR, len(vs))
	for i, v := range vs {
		out[i] = valueR{Kind: v.Kind, Data: v.Data}
	}
	return out
}

func mirror(m *Message) *messageR {
	r := &messageR{Version: m.Version, Source: m.Source, Relations: m.Relations}
	if m.Txs != nil {
		r.Txs = make([]txR, len(m.Txs))
	}
	for i, t := range m.Txs {
		tr := txR{Xid: t.Xid, CommitLSN: t.CommitLSN, EndLSN: t.EndLSN, CommitTime: t.CommitTime, Origin: t.Origin,
			Fragment: t.Fragment, Final: t.Final, FirstChange: t.FirstChange, PieceOffset: t.PieceOffset, PieceTotal: t.PieceTotal,
			Snapshot: t.Snapshot, PrevCommitLSN: t.PrevCommitLSN}
		if t.Changes != nil {
			tr.Changes = make([]changeR, len(t.Changes))
		}
		for j, c := range t.Changes {
			tr.Changes[j] = changeR{Op: c.Op, Rel: c.Rel, OldKind: c.OldKind, Old: mirrorValues(c.Old), New: mirrorValues(c.New),
				TruncateRels: c.TruncateRels, TruncateOptions: c.TruncateOptions, Prefix: c.Prefix, Content: c.Content, Transactional: c.Transactional,
				LSN: c.LSN}
		}
		r.Txs[i] = tr
	}
	return r
}

func TestCodecMatchesReflection(t *testing.T) {
	edge := catalogSample()
	edge.Relations[0].Columns[1].Type.Labels = []string{}
	edge.Relations[0].Columns[0].Default = strings.Repeat("d", 70000)
	edge.Relations[0].Columns[0].PrimaryKey = 1<<16 - 1
	edge.Txs = append(edge.Txs, Tx{Xid: 1<<32 - 1, CommitLSN: 1<<64 - 1, EndLSN: 0, CommitTime: -1, Fragment: 1<<32 - 1, FirstChange: 1 << 40,
		PrevCommitLSN: 1<<64 - 1, Changes: []Change{{Op: OpInsert, Rel: 0, LSN: 1<<64 - 1,
			New: []Value{{Kind: KindText, Data: []byte{}}, {Kind: KindBinary, Data: bytes.Repeat([]byte{7}, 70000)}}}}})
	edge.Txs = append(edge.Txs, Tx{Changes: []Change{}})
	edge.Txs = append(edge.Txs, Tx{FirstChange: 3, PieceOffset: 1 << 20, PieceTotal: 1<<31 - 1,
		Changes: []Change{{Op: OpUpdate, Rel: 0, Content: bytes.Repeat([]byte{9}, 1000)}}})
	edge.Txs = append(edge.Txs, Tx{CommitLSN: 0x2fff, Snapshot: &Snapshot{Kind: SnapshotInitial, ID: "initial", Marks: 255},
		Changes: []Change{{Op: OpRead, Rel: 0, New: []Value{{Kind: KindText, Data: []byte("1")}}}}})
	edge.Txs = append(edge.Txs, Tx{CommitLSN: 0x3001, Snapshot: &Snapshot{Kind: SnapshotIncremental, ID: "b1", Sinks: []string{"a", ""}}})
	edge.Txs = append(edge.Txs, Tx{CommitLSN: 0x3009, Snapshot: &Snapshot{Sinks: []string{}}})
	for name, m := range map[string]*Message{"sample": sample(), "catalog": catalogSample(), "snapshot": snapshotSample(), "edges": edge, "empty": {Source: Source{Name: "x"}}} {
		t.Run(name, func(t *testing.T) {
			m.Version = Version
			got, err := msgpack.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			want, err := msgpack.Marshal(mirror(m))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("hand-coded encoding differs from reflection:\n got %x\nwant %x", got[:min(len(got), 200)], want[:min(len(want), 200)])
			}
			// And the reflection encoding decodes through the codecs.
			var back Message
			if err := Unmarshal(want, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := msgpack.Marshal(&back)
			if !bytes.Equal(again, want) {
				t.Fatal("decode then encode does not reproduce the bytes")
			}
		})
	}
}

// The append path (into a bytes.Buffer) and the streaming path (any other
// writer: sizes, pieces) write the same bytes.
func TestEncodePathsAgree(t *testing.T) {
	m := sample()
	big := Change{Op: OpRead, Rel: 0, New: []Value{{Kind: KindText, Data: bytes.Repeat([]byte{'v'}, 70000)}, {Kind: KindNull}},
		TruncateRels: []int32{1, 2}, Prefix: strings.Repeat("p", 300), Content: bytes.Repeat([]byte{1}, 300)}
	changes := append(append([]Change{}, m.Txs[0].Changes...), m.Txs[1].Changes[0], big, Change{})
	changes[0].LSN = 0x1234
	for _, version := range []int{2, Version} {
		for i := range changes {
			c := &changes[i]
			appended, err := EncodeChange(c, version)
			if err != nil {
				t.Fatal(err)
			}
			var streamed bytes.Buffer
			w := struct{ io.Writer }{&streamed} // not a *bytes.Buffer: the streaming path
			if err := c.encode(msgpack.NewEncoder(w), version); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(appended, streamed.Bytes()) {
				t.Fatalf("version %d, change %d: the two paths differ:\n%x\n%x", version, i, appended[:min(len(appended), 64)], streamed.Bytes()[:min(streamed.Len(), 64)])
			}
			if n, err := ChangeSize(c, version); err != nil || n != uint64(len(appended)) {
				t.Fatalf("version %d, change %d: ChangeSize %d, encoded %d", version, i, n, len(appended))
			}
		}
	}
}
