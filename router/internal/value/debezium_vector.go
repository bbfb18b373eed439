package value

import (
	"bytes"
	"errors"
	"math"
	"strconv"
)

// appendVector renders pgvector's vector or halfvec text, "[1,2.5,3]", as
// Debezium's DoubleVector or FloatVector: a list of doubles or floats
// (Vectors.fromVectorString, Double/Float.parseDouble of each element).
func appendVector(b []byte, s []byte, bits int) ([]byte, error) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return b, errors.New("invalid vector text " + strconv.Quote(shorten(s)))
	}
	b = append(b, '[')
	in := s[1 : len(s)-1]
	for i, start := 0, 0; i <= len(in); i++ {
		if i < len(in) && in[i] != ',' {
			continue
		}
		if start > 0 {
			b = append(b, ',')
		}
		f, err := strconv.ParseFloat(string(trimSpace(in[start:i])), bits)
		if err != nil && !math.IsInf(f, 0) {
			return b, errors.New("invalid vector text " + strconv.Quote(shorten(s)))
		}
		b = appendJavaFloat(b, f, bits)
		start = i + 1
	}
	return append(b, ']'), nil
}

func trimSpace(s []byte) []byte {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

// sparseVectorSchema is Debezium's SparseDoubleVector schema up to its
// "optional" flag: the dimensions and a map of 1-based index to value.
const sparseVectorSchema = `{"type":"struct","fields":[{"type":"int16","optional":false,"field":"dimensions"},` +
	`{"type":"map","keys":{"type":"int16","optional":false},"values":{"type":"double","optional":false},"optional":false,"field":"vector"}],"optional":`

// appendSparseVector renders pgvector's sparsevec text, "{1:1.5,9:2}/3000",
// as Debezium's SparseDoubleVector (Vectors.fromSparseVectorString):
// {"dimensions":3000,"vector":[[1,1.5],[9,2.0]]}. The map's keys are
// Shorts, so Kafka Connect's JSON converter writes it as a list of pairs,
// in the order of the java.util.HashMap Debezium fills (new
// HashMap<>(n), in text order). Dimensions or an index beyond a Short
// make Debezium fail (Short.parseShort): an error here, a dead letter.
func appendSparseVector(b []byte, s []byte) ([]byte, error) {
	bad := func() ([]byte, error) {
		return b, errors.New("invalid or, for Debezium's SparseDoubleVector, too large sparsevec " + strconv.Quote(shorten(s)))
	}
	slash := bytes.LastIndexByte(s, '/')
	body, dims, ok := s[:max(slash, 0)], s[slash+1:], slash >= 0
	body = trimSpace(body)
	if !ok || len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
		return bad()
	}
	d, err := strconv.ParseInt(string(trimSpace(dims)), 10, 16)
	if err != nil {
		return bad()
	}
	body = trimSpace(body[1 : len(body)-1])
	var idx []int16
	var vals []float64
	var hashes []int32
	for len(body) > 0 {
		var elem []byte
		elem, body, _ = bytes.Cut(body, []byte{','})
		k, v, ok := bytes.Cut(elem, []byte{':'})
		if !ok {
			return bad()
		}
		i, err := strconv.ParseInt(string(trimSpace(k)), 10, 16)
		if err != nil {
			return bad()
		}
		f, err := strconv.ParseFloat(string(trimSpace(v)), 64)
		if err != nil && !math.IsInf(f, 0) {
			return bad()
		}
		// A Short's hashCode is its value; HashMap spreads it.
		h := int32(i)
		idx, vals, hashes = append(idx, int16(i)), append(vals, f), append(hashes, h^int32(uint32(h)>>16))
	}
	b = append(b, `{"dimensions":`...)
	b = strconv.AppendInt(b, d, 10)
	b = append(b, `,"vector":[`...)
	for n, i := range javaHashMapOrder(hashes, len(hashes), func(a, c int) int { return int(idx[a]) - int(idx[c]) }) {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(idx[i]), 10)
		b = append(b, ',')
		b = appendJavaFloat(b, vals[i], 64)
		b = append(b, ']')
	}
	return append(b, "]}"...), nil
}
