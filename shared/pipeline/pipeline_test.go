package pipeline

import (
	"strings"
	"testing"
)

var seedEnv = env("POSTGRES_DSN", "postgres://u:s3cret@db:5432/app", "NATS_URL", "nats://n1:4222,nats://n2:4222")

func TestSeedLoads(t *testing.T) {
	f, err := Load("testdata/seed-deltaforge.yaml", seedEnv)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if !f.Compat || f.APIVersion != CompatAPIVersion {
		t.Errorf("Compat %v, APIVersion %q", f.Compat, f.APIVersion)
	}
	src := f.Source
	if src.ID != "users-postgres" || src.Slot != "deltaforge_users" || src.Publication != "users_pub" ||
		src.DSN != "postgres://u:s3cret@db:5432/app" || src.StartPosition != Earliest ||
		strings.Join(src.Tables, ",") != "public.users,public.profiles,public.user_sessions" {
		t.Errorf("source %+v", src)
	}
	if len(f.Sinks) != 1 {
		t.Fatalf("%d sinks", len(f.Sinks))
	}
	s := f.Sinks[0]
	if s.Type != TypeNATS || s.ID != "users-nats" || s.Path != "spec.sinks[0].config" || s.Subject != "users.events" ||
		s.Stream.Name != "USERS" || s.Envelope.Type != "cloudevents" || s.Envelope.Settings["type_prefix"] != "com.acme.users" ||
		s.Encoding != "json" || s.SendTimeout.Seconds() != 5 || s.BatchTimeout.Seconds() != 30 ||
		s.Durable != "users-postgres-to-nats-users-nats" || s.Prefix != DefaultPrefix ||
		strings.Join(s.Conn.URLs, " ") != "nats://n1:4222 nats://n2:4222" || s.StartPosition != Earliest {
		t.Errorf("sink %+v", s)
	}
	if f.Batch.MaxEvents != 500 || f.Batch.MaxMS == nil || *f.Batch.MaxMS != 500 || !f.Batch.RespectSourceTx {
		t.Errorf("batch %+v", f.Batch)
	}
	if f.CommitPolicy.Mode != CommitRequired {
		t.Errorf("commit policy %+v", f.CommitPolicy)
	}
	if f.RawStream.Name != "PGJET_RAW" || f.RawStream.MaxAge.Hours() != 168 || f.RawStream.Replicas != 1 {
		t.Errorf("raw stream %+v", f.RawStream)
	}
	c, from := f.RawConn()
	if from != "spec.sinks[0].config" || c.URL() != "nats://n1:4222,nats://n2:4222" {
		t.Errorf("RawConn %+v from %q", c, from)
	}
	if !f.Has("spec.batch.max_ms") || f.Has("spec.raw_stream") || f.Has("spec.raw_stream.url") {
		t.Errorf("Has is wrong")
	}
}
