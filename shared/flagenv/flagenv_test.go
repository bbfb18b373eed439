package flagenv

import (
	"flag"
	"slices"
	"testing"
)

func TestStrays(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("slot", "", "")
	fs.String("nats-url", "", "")
	fs.String("publication", "", "")
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"a flag's own variable", []string{"PGJET_SLOT=a", "PGJET_NATS_URL=b"}, nil},
		{"one letter more", []string{"PGJET_SLOTT=a"}, []string{"PGJET_SLOTT sets nothing: did you mean PGJET_SLOT (--slot)? it is ignored"}},
		{"a dash for an underscore, two letters swapped", []string{"PGJET_NATS-URL=a", "PGJET_PUBLICATOIN=p"}, []string{
			"PGJET_NATS-URL sets nothing: did you mean PGJET_NATS_URL (--nats-url)? it is ignored",
			"PGJET_PUBLICATOIN sets nothing: did you mean PGJET_PUBLICATION (--publication)? it is ignored",
		}},
		{"far from every flag: a pipeline file's variable, say", []string{"PGJET_HASH_KEY=k", "PGJET_ENVELOPE=native"}, nil},
		{"not pgjet's", []string{"SLOT=a", "PGJETSLOT=b", "HOME=/root"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Strays(fs, tt.environ); !slices.Equal(got, tt.want) {
				t.Errorf("Strays(%q) = %q, want %q", tt.environ, got, tt.want)
			}
		})
	}
}
