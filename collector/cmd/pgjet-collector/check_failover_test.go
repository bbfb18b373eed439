package main

import "testing"

func TestNamesDatabase(t *testing.T) {
	for _, tt := range []struct {
		conninfo string
		want     bool
	}{
		{"host=primary port=5432 user=replicator dbname=app", true},
		{"host=primary user=replicator password='x y' dbname='app'", true},
		{"host=primary port=5432 user=replicator", false},
		{"host=primary dbname=", false},
		{"postgres://replicator@primary:5432/app", true},
		{"postgresql://replicator@primary/?dbname=app", true},
		{"postgres://replicator@primary:5432", false},
		{"", false},
	} {
		if got := namesDatabase(tt.conninfo); got != tt.want {
			t.Errorf("namesDatabase(%q) = %v, want %v", tt.conninfo, got, tt.want)
		}
	}
}
