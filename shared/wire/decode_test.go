package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// encodePrefix writes the start of a message with write and nothing after:
// what a corrupt record claiming more than it holds looks like.
func encodePrefix(t *testing.T, write func(e *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := write(msgpack.NewEncoder(&buf)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A corrupt header claiming billions of elements fails on the missing bytes
// instead of allocating for them, wherever it sits.
func TestUnmarshalHugeHeaders(t *testing.T) {
	const huge = 1<<32 - 1
	head := func(e *msgpack.Encoder) error {
		if err := e.EncodeArrayLen(4); err != nil {
			return err
		}
		if err := e.EncodeInt(Version); err != nil {
			return err
		}
		return e.Encode(&Source{Name: "s"})
	}
	// oneRelation writes the head and one relation's fields before its columns.
	oneRelation := func(e *msgpack.Encoder) error {
		if err := head(e); err != nil {
			return err
		}
		if err := e.EncodeArrayLen(1); err != nil {
			return err
		}
		if err := e.EncodeArrayLen(relationFields); err != nil {
			return err
		}
		for _, v := range []any{uint32(1), "public", "t", byte('d')} {
			if err := e.Encode(v); err != nil {
				return err
			}
		}
		return nil
	}
	tests := []struct {
		name  string
		write func(e *msgpack.Encoder) error
	}{
		{"relations", func(e *msgpack.Encoder) error {
			if err := head(e); err != nil {
				return err
			}
			return e.EncodeArrayLen(huge)
		}},
		{"transactions", func(e *msgpack.Encoder) error {
			if err := head(e); err != nil {
				return err
			}
			if err := e.EncodeNil(); err != nil {
				return err
			}
			return e.EncodeArrayLen(huge)
		}},
		{"columns", func(e *msgpack.Encoder) error {
			if err := oneRelation(e); err != nil {
				return err
			}
			return e.EncodeArrayLen(huge)
		}},
		{"enum labels", func(e *msgpack.Encoder) error {
			if err := oneRelation(e); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(1); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(columnFields); err != nil {
				return err
			}
			for _, v := range []any{"c", uint32(16500), int32(-1), false} {
				if err := e.Encode(v); err != nil {
					return err
				}
			}
			if err := e.EncodeArrayLen(typeFields); err != nil {
				return err
			}
			for _, v := range []any{"public", "mood", byte('e'), uint32(0), uint32(0), byte(0)} {
				if err := e.Encode(v); err != nil {
					return err
				}
			}
			return e.EncodeArrayLen(huge)
		}},
		{"byte string", func(e *msgpack.Encoder) error {
			if err := head(e); err != nil {
				return err
			}
			if err := e.EncodeNil(); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(1); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(txFields); err != nil {
				return err
			}
			for _, v := range []any{uint32(1), uint64(2), uint64(3), int64(4), "", uint32(0), true, uint64(0)} { // up to Changes
				if err := e.Encode(v); err != nil {
					return err
				}
			}
			if err := e.EncodeArrayLen(1); err != nil {
				return err
			}
			if err := e.EncodeArrayLen(changeFields); err != nil {
				return err
			}
			for _, v := range []any{uint8(OpMessage), int32(-1), uint8(0)} {
				if err := e.Encode(v); err != nil {
					return err
				}
			}
			for range 3 { // old, new, truncate relations
				if err := e.EncodeNil(); err != nil {
					return err
				}
			}
			if err := e.EncodeUint8(0); err != nil {
				return err
			}
			if err := e.EncodeString("p"); err != nil {
				return err
			}
			return e.EncodeBytesLen(huge)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodePrefix(t, tt.write)
			var m Message
			err := Unmarshal(b, &m)
			if err == nil || !strings.Contains(err.Error(), "bytes left") {
				t.Fatalf("err = %v, want one about the bytes left", err)
			}
		})
	}
}

func TestUnmarshalRejectsTrailingBytes(t *testing.T) {
	b, err := Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := Unmarshal(append(b, 0xc0), &m); err == nil || !strings.Contains(err.Error(), "1 bytes after the message") {
		t.Fatalf("err = %v, want one about the trailing byte", err)
	}
}

// Decoded byte strings alias the input, capped: appending to one value
// leaves the input, and so the next value, as they were.
func TestDecodedValuesAreCapped(t *testing.T) {
	m := sample()
	b, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(b)
	var got Message
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	up := &got.Txs[0].Changes[1]
	_ = append(up.Old[0].Data, "XXXXXXXX"...)
	_ = append(got.Txs[1].Changes[0].Content, "XXXXXXXX"...)
	vals := append(up.Old, Value{Kind: KindText, Data: []byte("extra")})
	if !bytes.Equal(b, orig) {
		t.Fatal("appending to a decoded value wrote into the input")
	}
	if got.Txs[0].Changes[1].New[0].Kind != KindText || string(up.New[0].Data) != "2" || len(vals) != 3 {
		t.Fatal("appending to one change's values overwrote the next one's")
	}
}
