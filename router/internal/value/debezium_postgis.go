package value

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
)

// Debezium's structs for PostGIS values, up to their "optional" flag:
// the EWKB as PostGIS sends it, and its SRID.
const (
	geometryFields = `{"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":`
)

// appendPostgis renders a PostGIS geometry or geography, whose text is
// its EWKB in hex, as Debezium's Geometry or Geography struct
// (PostgisGeometry.fromHexEwkb): the EWKB itself, base64, and the SRID
// it holds, or null.
func appendPostgis(b []byte, s []byte) ([]byte, error) {
	if len(s)%2 != 0 || len(s) < 18 {
		return b, errors.New("invalid PostGIS EWKB: " + strconv.Quote(shorten(s)))
	}
	ewkb := make([]byte, len(s)/2)
	for i := range ewkb {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return b, errors.New("invalid PostGIS EWKB: " + strconv.Quote(shorten(s)))
		}
		ewkb[i] = hi<<4 | lo
	}
	var order binary.ByteOrder = binary.BigEndian
	if ewkb[0] != 0 {
		order = binary.LittleEndian
	}
	b = append(b, `{"wkb":"`...)
	b = base64.StdEncoding.AppendEncode(b, ewkb)
	b = append(b, `","srid":`...)
	const sridFlag = 0x20000000
	if order.Uint32(ewkb[1:5])&sridFlag != 0 {
		b = strconv.AppendInt(b, int64(int32(order.Uint32(ewkb[5:9]))), 10)
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}'), nil
}
