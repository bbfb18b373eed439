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
	}
	for _, tt := range tests {
		got := DSN(tt.in)
		if got != tt.want {
			t.Errorf("DSN(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, secret := range []string{"s3cret", "p1", "p2", "3\\'cret"} {
			if strings.Contains(got, secret) {
				t.Errorf("DSN(%q) leaks %q: %q", tt.in, secret, got)
			}
		}
	}
}
