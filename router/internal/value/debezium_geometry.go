package value

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// pointSchema is the Connect schema of Debezium's Point struct
// (io.debezium.data.geometry.Point), up to its "optional" flag.
const pointSchema = `{"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},` +
	`{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":`

// appendPoint renders point text, "(x,y)", as Debezium's Point struct:
// the coordinates as doubles, and the point as OGC WKB (little-endian,
// type 1) with no SRID, which Point.createValue builds.
func appendPoint(b []byte, s []byte) ([]byte, error) {
	x, y, ok := parsePoint(s)
	if !ok {
		return b, badText(pgtype.PointOID, s)
	}
	var wkb [21]byte
	wkb[0] = 1 // little-endian
	binary.LittleEndian.PutUint32(wkb[1:], 1)
	binary.LittleEndian.PutUint64(wkb[5:], math.Float64bits(x))
	binary.LittleEndian.PutUint64(wkb[13:], math.Float64bits(y))
	b = append(b, `{"x":`...)
	b = appendJavaFloat(b, x, 64)
	b = append(b, `,"y":`...)
	b = appendJavaFloat(b, y, 64)
	b = append(b, `,"wkb":"`...)
	b = base64.StdEncoding.AppendEncode(b, wkb[:])
	return append(b, `","srid":null}`...), nil
}

// parsePoint parses Postgres's point output, "(x,y)", as the JDBC driver's
// PGpoint does (Double.parseDouble of each coordinate).
func parsePoint(s []byte) (x, y float64, ok bool) {
	if len(s) < 5 || s[0] != '(' || s[len(s)-1] != ')' {
		return 0, 0, false
	}
	in := s[1 : len(s)-1]
	comma := -1
	for i, c := range in {
		if c == ',' {
			comma = i
			break
		}
	}
	if comma < 0 {
		return 0, 0, false
	}
	var err error
	if x, err = strconv.ParseFloat(string(in[:comma]), 64); err != nil && !math.IsInf(x, 0) {
		return 0, 0, false
	}
	if y, err = strconv.ParseFloat(string(in[comma+1:]), 64); err != nil && !math.IsInf(y, 0) {
		return 0, 0, false
	}
	return x, y, true
}
