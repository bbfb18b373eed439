package wire

import (
	"bytes"
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
			PrevCommitLSN: t.PrevCommitLSN}
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
	for name, m := range map[string]*Message{"sample": sample(), "catalog": catalogSample(), "edges": edge, "empty": {Source: Source{Name: "x"}}} {
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
