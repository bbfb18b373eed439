package pipeline

import (
	"errors"
	"strings"
	"testing"
)

// env is a lookup over a fixed set of variables.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// secrets appear in the test files and variables; no message may show them.
var secrets = []string{"s3cret", "t0ken", "hunter2", "key-material", "from-env-value"}

const (
	head   = "apiVersion: pgjet/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n"
	source = "  source:\n    type: postgres\n    config: {dsn: \"postgres://u:s3cret@h/db\"}\n"
	// natsA is a complete nats sink.
	natsA = `{type: nats, config: {id: a, url: "nats://h:4222", stream: A}}`
)

// doc is a pipeline file with the source, the sinks given (flow mappings)
// and extra spec-level YAML (indented by two spaces).
func doc(extra string, sinks ...string) string {
	s := head + source
	if len(sinks) > 0 {
		s += "  sinks:\n"
		for _, k := range sinks {
			s += "    - " + k + "\n"
		}
	}
	return s + extra
}

// parse parses text and returns the file and its problems (nil if none).
func parse(t *testing.T, text string, lookup func(string) (string, bool)) (*File, *Errors) {
	t.Helper()
	f, err := Parse([]byte(text), lookup)
	if f == nil {
		t.Fatal("Parse returned a nil File")
	}
	return f, asErrors(t, err)
}

func asErrors(t *testing.T, err error) *Errors {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *Errors
	if !errors.As(err, &e) {
		t.Fatalf("error is %T, not *Errors: %v", err, err)
	}
	for _, s := range secrets {
		if strings.Contains(e.Error(), s) {
			t.Errorf("a message shows the secret %q:\n%v", s, e)
		}
	}
	return e
}

// expect checks that every want ("path: part of the message"; ": message"
// for the file as a whole) matches a problem, and that there are no others.
func expect(t *testing.T, e *Errors, want ...string) {
	t.Helper()
	lines := []string{}
	if e != nil {
		lines = strings.Split(e.Error(), "\n")
	}
	used := make([]bool, len(lines))
	for _, w := range want {
		path, msg, _ := strings.Cut(w, ": ")
		found := false
		for i, l := range lines {
			if used[i] {
				continue
			}
			if path == "" && strings.HasPrefix(l, msg) || path != "" && strings.HasPrefix(l, path+": ") && strings.Contains(l[len(path)+2:], msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("no problem %q in:\n%s", w, strings.Join(lines, "\n"))
		}
	}
	for i, l := range lines {
		if !used[i] {
			t.Errorf("unexpected problem %q", l)
		}
	}
}
