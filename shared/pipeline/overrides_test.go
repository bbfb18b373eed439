package pipeline

import (
	"strings"
	"testing"
	"time"
)

// Overrides change the file's structure before it is decoded: nested keys
// are made, a stream's short form is expanded, an anchor's other uses keep
// their value, a key can be removed, and the values are taken as written.
func TestOverrides(t *testing.T) {
	text := head + source + `  raw_stream: {embedded: {dir: /d}}
  sinks:
    - &a {type: nats, config: {id: a, url: "nats://h:4222", stream: A, send_timeout_secs: 20}}
    - {type: nats, config: {id: b, url: "nats://h:4222", stream: {name: B, replicas: 3}}}
`
	ov := &Overrides{}
	ov.Set("spec.sinks[0].config.stream.persist", "--output-persist", "async")
	ov.Set("spec.sinks[0].config.envelope.data", "--cloudevents-data", "native")
	ov.Set("spec.sinks[0].config.envelope.type", "--envelope", "cloudevents")
	ov.Set("spec.sinks[0].config.send_timeout_secs", "--ack-timeout", "1m30s")
	ov.Set("spec.sinks[0].config.standby", "--standby", "true")
	ov.Set("spec.sinks[1].config.stream.replicas", "--output-replicas", "2")
	ov.Set("spec.sinks[1].config.password", "--nats-password", "pa$$word${X}")
	ov.Set("spec.sinks[1].config.username", "--nats-user", "u")
	ov.Remove("spec.raw_stream.embedded", "--nats")
	ov.Set("spec.raw_stream.url", "--nats", "nats://flag:4222")
	f, err := ParseWith([]byte(text), env("X", "expanded"), ov)
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.Sinks[0], f.Sinks[1]
	if a.Stream.Name != "A" || a.Stream.Persist != "async" || a.Envelope.Type != "cloudevents" || a.Envelope.Settings["data"] != "native" {
		t.Errorf("sink a: stream %+v, envelope %+v", a.Stream, a.Envelope)
	}
	if a.SendTimeout != 90*time.Second || a.BatchTimeout != 90*time.Second || !a.Standby {
		t.Errorf("sink a: send %s, batch %s, standby %v", a.SendTimeout, a.BatchTimeout, a.Standby)
	}
	if b.Stream.Replicas != 2 || b.Conn.Password != "pa$$word${X}" || b.Conn.Username != "u" {
		t.Errorf("sink b: stream %+v, user %q, password %q (a flag's value is not expanded)", b.Stream, b.Conn.Username, b.Conn.Password)
	}
	if f.RawStream.Embedded != nil || f.RawStream.Conn.URL() != "nats://flag:4222" {
		t.Errorf("raw stream %+v", f.RawStream)
	}

	// An anchor's other uses keep the file's value.
	text = head + source + "  sinks:\n    - &a {type: nats, config: &c {id: a, url: \"nats://h\", stream: A}}\n    - {type: nats, config: {<<: *c, id: b, stream: B}}\n"
	ov = &Overrides{}
	ov.Set("spec.sinks[0].config.prefix", "--subject-prefix", "x")
	f, err = ParseWith([]byte(text), nil, ov)
	if err != nil {
		t.Fatal(err)
	}
	if f.Sinks[0].Prefix != "x" || f.Sinks[1].Prefix != "postgres" {
		t.Errorf("prefixes %q %q, want x and the default", f.Sinks[0].Prefix, f.Sinks[1].Prefix)
	}
}

// A problem with a value a flag gave names the flag, not a key the user
// never wrote; the same check with the same bound as in the file.
func TestOverrideProblemsNameTheFlag(t *testing.T) {
	text := doc("", natsA)
	for _, tt := range []struct {
		path, flag, value string
		want              string
		file              string // the same value written in the file
	}{
		{"spec.sinks[0].config.group", "--group", "tx", `bad --group "tx": use none or transaction`,
			`spec.sinks[0].config.group: unknown value "tx": use none or transaction`},
		{"spec.sinks[0].config.stream.duplicate_window", "--output-duplicate-window", "100ms", "bad --output-duplicate-window 100ms: use at least 1s",
			"spec.sinks[0].config.stream.duplicate_window: 100ms: use at least 1s"},
		{"spec.sinks[0].config.stream.replicas", "--output-replicas", "9", "bad --output-replicas: 9 is out of range: use 1 to 5",
			"spec.sinks[0].config.stream.replicas: 9 is out of range: use 1 to 5"},
		{"spec.sinks[0].config.standby", "--standby", "yes", `bad --standby: must be true or false: "yes" is not`, ""},
		{"spec.sinks[0].config.send_timeout_secs", "--ack-timeout", "0s", "bad --ack-timeout 0s: use more than 0s, at most 24h", ""},
	} {
		ov := &Overrides{}
		ov.Set(tt.path, tt.flag, tt.value)
		_, err := ParseWith([]byte(text), nil, ov)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s %s: %v, want %q", tt.flag, tt.value, err, tt.want)
		}
		if tt.file == "" {
			continue
		}
		key := tt.path[strings.LastIndex(tt.path, ".")+1:]
		yamlDoc := strings.Replace(text, "stream: A", "stream: {name: A, "+key+": "+tt.value+"}", 1)
		if !strings.Contains(tt.path, ".stream.") {
			yamlDoc = strings.Replace(text, "stream: A", "stream: A, "+key+": "+tt.value, 1)
		}
		_, err = Parse([]byte(yamlDoc), nil)
		if err == nil || err.Error() != tt.file {
			t.Errorf("in the file: %v, want %q", err, tt.file)
		}
	}
	// Where the rule relates two keys, the flag is named too.
	ov := &Overrides{}
	ov.Set("spec.sinks[0].config.send_timeout_secs", "--ack-timeout", "90s")
	_, err := ParseWith([]byte(strings.Replace(text, "stream: A", "stream: A, batch_timeout_secs: 60", 1)), nil, ov)
	if err == nil || !strings.Contains(err.Error(), "spec.sinks[0].config.batch_timeout_secs: 60 is out of range: use --ack-timeout (1m30s) to 86400") {
		t.Errorf("ack timeout against the file's batch timeout: %v", err)
	}
}
