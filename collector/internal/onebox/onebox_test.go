package onebox

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/shared/pipeline"
)

// The seed's commands describe valid pipelines with pgoutput-stream's
// stream, subjects and limits; --print-config's file is the same pipeline,
// the connection string left to ${PGJET_CONNECTION}.
func TestSeedCommandsMakePipelines(t *testing.T) {
	seed := []string{"--connection", "host=localhost user=postgres password=pa$$word dbname=mydb", "--slot", "my_slot", "--publication", "my_pub"}
	for _, tc := range []struct {
		name   string
		args   []string
		stream string // "": stdout only
		prefix string
	}{
		{"basic usage", nil, "", ""},
		{"with NATS", []string{"--nats-server", "nats://localhost:4222"}, "postgres_replication", "postgres"},
		{"custom stream", []string{"--nats-server", "nats://localhost:4222", "--nats-stream", "my_custom_stream", "--nats-subject-prefix", "myapp"}, "my_custom_stream", "myapp"},
		{"embedded server's own output", []string{"--listen", "127.0.0.1:4222"}, "postgres_replication", "postgres"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(append(append([]string{}, seed...), tc.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			f, err := pipeline.Parse(c.Doc, nil)
			if err != nil {
				t.Fatalf("%v\n%s", err, c.Doc)
			}
			if f.Source.DSN != "host=localhost user=postgres password=pa$$word dbname=mydb" || f.Source.Slot != "my_slot" || f.Source.Publication != "my_pub" {
				t.Errorf("source %+v", f.Source)
			}
			if f.RawStream.Embedded == nil {
				t.Error("the raw stream is not in the embedded server")
			}
			var nats *pipeline.Sink
			for i := range f.Sinks {
				if f.Sinks[i].Type == pipeline.TypeNATS {
					nats = &f.Sinks[i]
				}
			}
			switch {
			case tc.stream == "" && nats != nil:
				t.Error("a NATS sink without --nats-server")
			case tc.stream != "" && nats == nil:
				t.Fatal("no NATS sink")
			case tc.stream != "":
				if nats.Stream.Name != tc.stream || nats.Prefix != tc.prefix || nats.Stream.MaxMsgs != StreamMaxMsgs || nats.Stream.MaxBytes != StreamMaxBytes ||
					!nats.Transactions || !nats.Relations {
					t.Errorf("NATS sink %+v, stream %+v", nats, nats.Stream)
				}
			}
			printed, err := pipeline.Parse(c.Printable, func(name string) (string, bool) { return "host=db", name == "PGJET_CONNECTION" })
			if err != nil {
				t.Fatalf("--print-config: %v\n%s", err, c.Printable)
			}
			if printed.Source.DSN != "host=db" || strings.Contains(string(c.Printable), "password") {
				t.Errorf("--print-config shows the connection string:\n%s", c.Printable)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--connection is required"},
		{[]string{"--connection", "host=db", "--format", "yaml"}, `bad --format "yaml"`},
		{[]string{"--connection", "host=db", "--format", "none"}, "publishes nothing"},
		{[]string{"--config", "p.yaml", "--slot", "s"}, "--slot: give them in the pipeline file p.yaml"},
		{[]string{"--connection", "host=db", "--listen", "4222"}, `bad --listen "4222"`},
	} {
		_, err := Parse(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := Parse([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestHelpGroupsEveryFlag(t *testing.T) {
	fs := FlagSet()
	if got := Page.Ungrouped(fs); len(got) > 0 {
		t.Errorf("flags in no group: %v", got)
	}
	if got := Page.Unknown(fs); len(got) > 0 {
		t.Errorf("groups name unknown flags: %v", got)
	}
}
