package wire

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// ChangeSize returns the length of c's encoding in the layout of format
// version (EncodeChange) without building it.
func ChangeSize(c *Change, version int) (uint64, error) {
	var n counter
	if err := c.encode(msgpack.NewEncoder(&n), version); err != nil {
		return 0, fmt.Errorf("encode change: %w", err)
	}
	return uint64(n), nil
}

type counter uint64

func (n *counter) Write(p []byte) (int, error) { *n += counter(len(p)); return len(p), nil }
func (n *counter) WriteByte(byte) error        { *n++; return nil }

// CutChange encodes c in the layout of format version (EncodeChange) and
// hands its bytes from byte from on to emit in pieces of size bytes (the
// last may be shorter), each with its offset. It
// holds one piece at a time, never the whole encoding: a change of a 1 GB
// value costs the value and one piece, not twice the value. Each piece is a
// new slice that emit may keep.
func CutChange(c *Change, version int, from uint64, size int, emit func(offset uint64, piece []byte) error) error {
	if size <= 0 {
		return errors.New("cut change: piece size must be positive")
	}
	w := &pieceWriter{from: from, size: size, emit: emit}
	if err := c.encode(msgpack.NewEncoder(w), version); err != nil {
		if w.err != nil {
			return w.err // emit's own error, unwrapped
		}
		return fmt.Errorf("encode change: %w", err)
	}
	return w.flush()
}

type pieceWriter struct {
	off  uint64 // bytes of the encoding seen so far
	from uint64
	size int
	buf  []byte
	emit func(uint64, []byte) error
	err  error
}

func (w *pieceWriter) WriteByte(b byte) error {
	_, err := w.Write([]byte{b})
	return err
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.off < w.from {
		skip := min(uint64(len(p)), w.from-w.off)
		p = p[skip:]
		w.off += skip
	}
	for len(p) > 0 {
		if w.buf == nil {
			// A new buffer per piece: emit keeps the previous one.
			w.buf = make([]byte, 0, w.size)
		}
		k := min(len(p), w.size-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		w.off += uint64(k)
		if len(w.buf) == w.size {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *pieceWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	b := w.buf
	w.buf = nil
	if err := w.emit(w.off-uint64(len(b)), b); err != nil {
		w.err = err
		return err
	}
	return nil
}
