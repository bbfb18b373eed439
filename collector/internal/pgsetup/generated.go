package pgsetup

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/pgjet/pgjet/collector/internal/pubwatch"
)

// publicationOptions are the options of a publication pgjet creates: where
// the server can publish stored generated columns (PostgreSQL 18), it
// does, so that a row arrives with every column Postgres stores for it,
// as a consumer reading the table would see it. Probed, not assumed from
// the version.
func publicationOptions(ctx context.Context, conn *pgx.Conn) string {
	f, err := pubwatch.Probe(ctx, conn)
	if err != nil || !f.GeneratedColumns {
		return ""
	}
	return " WITH (publish_generated_columns = stored)"
}
