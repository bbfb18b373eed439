package redact

import (
	"strings"
	"testing"
)

func TestDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/x?sslmode=disable", "postgres://app:xxxxx@db:5432/x?sslmode=disable"},
		{"postgres://app@db/x", "postgres://app@db/x"},
		{"host=db user=app password=s3cret dbname=x", "host=db user=app password=xxxxx dbname=x"},
		{"host=db password='s 3\\'cret' dbname=x", "host=db password=xxxxx dbname=x"},
		{"postgres://db/x?password=s3cret", "postgres://db/x?password=xxxxx"},
		{"nats://u:p1@a:4222,nats://u:p2@b:4222", "nats://u:xxxxx@a:4222,nats://u:xxxxx@b:4222"},
		{"nats://s3cret@a:4222, tls://s3cret@b:4222", "nats://xxxxx@a:4222,tls://xxxxx@b:4222"},
		// A URL keeps a comma in a password as it is (pgx connects with it):
		// a Postgres URL is not a list.
		{"postgres://app:s3,cret@db/x", "postgres://app:xxxxx@db/x"},
		{"postgresql://app:s3,cret@db1:5432,db2:5432/x?sslmode=verify-full", "postgresql://app:xxxxx@db1:5432,db2:5432/x?sslmode=verify-full"},
		{"postgres://app@db1,db2/x?password=s3,cret", "postgres://app@db1,db2/x?password=xxxxx"},
		// A raw '/', '?', '#' or '@' in the password: Go's URL parser ends the
		// user part early or fails.
		{"postgres://app:s3/cret@db/x", "postgres://xxxxx@db/x"},
		{"postgres://app:123/s3cret@db/x", "postgres://xxxxx@db/x"},
		{"postgres://app:s3?cret@db/x", "postgres://xxxxx@db/x"},
		{"postgres://app:s3#cret@db/x", "postgres://xxxxx@db/x"},
		{"postgres://app:s3@cret@db/x", "postgres://app:xxxxx@db/x"},
		{"postgres://app:s3cret@db:port/x?password=s3cret", "postgres://xxxxx@db:port/x?password=xxxxx"},
		// libpq's escapes in key=value strings, and an unterminated quote.
		{"host=db password=s3\\ cret dbname=x", "host=db password=xxxxx dbname=x"},
		{"host=db password=s3cret\\", "host=db password=xxxxx"},
		{"host=db password='s3 cret", "host=db password=xxxxx"},
		{"host=db PASSWORD = s3cret", "host=db PASSWORD = xxxxx"},
		// A NATS list element without a scheme (nats.go adds nats://).
		{"nats://a:4222,u:s3cret@b:4222", "nats://a:4222,xxxxx@b:4222"},
	}
	for _, tt := range tests {
		got := DSN(tt.in)
		if got != tt.want {
			t.Errorf("DSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, secret := range []string{"s3cret", "p1", "p2", "3\\'cret", "cret"} {
			if strings.Contains(got, secret) {
				t.Errorf("DSN(%q) leaks %q: %q", tt.in, secret, got)
			}
		}
	}
}
