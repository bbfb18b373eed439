package value

import (
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// appendArray renders an array as nested JSON arrays (one level per
// dimension, lower bounds dropped, as to_jsonb does). pgtype parses the array
// literal or binary form; rawCodec makes it hand over each element's bytes
// undecoded, so elements render exactly like scalars of the element type.
func (d *Decoder) appendArray(b []byte, t typ, binary bool, data []byte) ([]byte, error) {
	format := int16(pgtype.TextFormatCode)
	if binary {
		format = pgtype.BinaryFormatCode
	}
	plan, err := d.arrayPlan(t, format)
	if err != nil {
		return b, err
	}
	if err := plan.Scan(data, &d.arr); err != nil {
		return b, fmt.Errorf("parse array: %w", err)
	}
	elems, dims := d.arr.Elements, d.arr.Dims
	// Drop references to the value's bytes once rendered.
	defer clear(elems)
	if len(elems) == 0 {
		return append(b, "[]"...), nil
	}
	n := 1
	for _, dim := range dims {
		n *= int(dim.Length)
	}
	if len(dims) == 0 || n != len(elems) {
		return b, fmt.Errorf("parse array: dimensions do not match %d elements", len(elems))
	}
	next := 0
	return d.appendDim(b, t.oid, binary, dims, elems, &next)
}

func (d *Decoder) appendDim(b []byte, elemOID uint32, binary bool, dims []pgtype.ArrayDimension, elems []pgtype.UndecodedBytes, next *int) ([]byte, error) {
	b = append(b, '[')
	for i := range int(dims[0].Length) {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if len(dims) > 1 {
			b, err = d.appendDim(b, elemOID, binary, dims[1:], elems, next)
		} else {
			e := elems[*next]
			*next++
			switch {
			case e == nil:
				b = append(b, "null"...)
			case binary:
				b, err = d.appendBinary(b, elemOID, e)
			default:
				b, err = d.appendText(b, elemOID, e)
			}
			if err != nil {
				err = fmt.Errorf("array element %d: %w", *next, err)
			}
		}
		if err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// arrayPlan returns the cached pgtype scan plan for arrays of type t.
func (d *Decoder) arrayPlan(t typ, format int16) (pgtype.ScanPlan, error) {
	key := arrayKey{oid: t.array, elem: t.oid, format: format}
	if p, ok := d.arrays[key]; ok {
		return p, nil
	}
	codec := &pgtype.ArrayCodec{
		ElementType: &pgtype.Type{Name: "element", OID: t.oid, Codec: rawCodec{}},
		Delimiter:   t.delim,
	}
	p := codec.PlanScan(d.m, t.array, format, &d.arr)
	if p == nil {
		return nil, fmt.Errorf("no array scan plan for type %d", t.array)
	}
	d.arrays[key] = p
	return p, nil
}

// rawCodec is an element codec that decodes nothing: it hands pgtype's array
// parser the element bytes as they are (nil for NULL).
type rawCodec struct{}

func (rawCodec) FormatSupported(int16) bool { return true }
func (rawCodec) PreferredFormat() int16     { return pgtype.TextFormatCode }

func (rawCodec) PlanEncode(*pgtype.Map, uint32, int16, any) pgtype.EncodePlan { return nil }

func (rawCodec) PlanScan(_ *pgtype.Map, _ uint32, _ int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*pgtype.UndecodedBytes); ok {
		return rawScanPlan{}
	}
	return nil
}

var errRawOnly = errors.New("raw element codec only scans undecoded bytes")

func (rawCodec) DecodeDatabaseSQLValue(*pgtype.Map, uint32, int16, []byte) (driver.Value, error) {
	return nil, errRawOnly
}

func (rawCodec) DecodeValue(*pgtype.Map, uint32, int16, []byte) (any, error) {
	return nil, errRawOnly
}

type rawScanPlan struct{}

// Scan keeps src without copying: pgtype passes a fresh copy for text arrays
// and a slice of the value for binary ones, and both outlive the rendering.
func (rawScanPlan) Scan(src []byte, dst any) error {
	*dst.(*pgtype.UndecodedBytes) = src
	return nil
}
