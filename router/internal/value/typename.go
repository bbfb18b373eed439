package value

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgjet/pgjet/shared/wire"
)

// types knows the names of Postgres's built-in types by OID.
var types = pgtype.NewMap()

// TypeName is the name of a column's type as Postgres's catalog has it:
// int4, _text (an array), or schema.name for a user-defined type.
func TypeName(c *wire.Column) string {
	if c.Type.Name != "" {
		if c.Type.Schema == "" || c.Type.Schema == "public" || c.Type.Schema == "pg_catalog" {
			return c.Type.Name
		}
		return c.Type.Schema + "." + c.Type.Name
	}
	if t, ok := types.TypeForOID(c.TypeOID); ok {
		return t.Name
	}
	if name, ok := builtinNames[c.TypeOID]; ok {
		return name
	}
	return fmt.Sprintf("oid %d", c.TypeOID)
}
