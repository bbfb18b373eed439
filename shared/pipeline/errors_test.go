package pipeline

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestAllAtOnce: a file with many problems lists them all, one per line,
// each with its path, in file order.
func TestAllAtOnce(t *testing.T) {
	_, err := Load("testdata/bad.yaml", nil)
	e := asErrors(t, err)
	got := e.Error() + "\n"
	if *update {
		if err := os.WriteFile("testdata/bad.golden", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/bad.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if e.Len() != strings.Count(got, "\n") {
		t.Errorf("Len %d for %d lines", e.Len(), strings.Count(got, "\n"))
	}
}

func TestScopes(t *testing.T) {
	_, err := Load("testdata/bad.yaml", nil)
	e := asErrors(t, err)
	paths := func(e *Errors) string {
		var ps []string
		for _, p := range e.List() {
			ps = append(ps, p.Path)
		}
		return strings.Join(ps, " ")
	}
	// The raw stream has no url: the collector uses the first nats sink's
	// connection, so its url and username problems are the collector's too.
	wantCollector := "metadata.name metadata.owner spec.source.config.dsn spec.source.config.slot spec.source.config.tables[0] " +
		"spec.source.config.start_position spec.raw_stream.replicas spec.raw_stream.max_age spec.sinks[0].config.url " +
		"spec.sinks[0].config.username spec.batch.max_ms spec.batch.respect_source_tx spec.commit_policy.mode spec.snapshot"
	if got := paths(e.For(ScopeCollector)); got != wantCollector {
		t.Errorf("collector:\n%s\nwant\n%s", got, wantCollector)
	}
	wantRouter := "metadata.name metadata.owner spec.raw_stream.replicas spec.raw_stream.max_age spec.sinks[0].config.url " +
		"spec.sinks[0].config.username spec.sinks[0].config.format spec.sinks[0].config.required spec.sinks[0].config.send_timeout_secs " +
		"spec.sinks[1].config.id spec.sinks[1].config.tables.include[0] spec.sinks[1].config.columns[0].mask.email " +
		"spec.sinks[1].config.subject spec.sinks[1].config.hash_key spec.snapshot"
	if got := paths(e.For(ScopeRouter)); got != wantRouter {
		t.Errorf("router:\n%s\nwant\n%s", got, wantRouter)
	}
	if e.For(ScopeAll).Len() != e.Len() {
		t.Error("ScopeAll drops problems")
	}

	// With a url of its own, the raw stream does not use the sink's
	// connection, and the collector does not care about it.
	_, err = Parse([]byte(doc("  raw_stream: {url: nats://raw}\n", `{type: nats, config: {id: a, url: "${U}", stream: A}}`)), nil)
	e = asErrors(t, err)
	if e.For(ScopeCollector).Len() != 0 || e.For(ScopeRouter).Len() != 1 {
		t.Errorf("collector %v; router %v", e.For(ScopeCollector), e.For(ScopeRouter))
	}
	// Also when the raw stream's url could not be read.
	_, err = Parse([]byte(doc("  raw_stream: {url: '${RAW}'}\n", `{type: nats, config: {id: a, url: "${U}", stream: A}}`)), nil)
	e = asErrors(t, err)
	if got := paths(e.For(ScopeCollector)); got != "spec.raw_stream.url" {
		t.Errorf("collector: %s", got)
	}
	// Only the first nats sink lends its connection.
	_, err = Parse([]byte(doc("", `{type: stdout, config: {id: s, tables: ["x"]}}`, natsA, `{type: nats, config: {id: b, url: "${U}", stream: B}}`)), nil)
	e = asErrors(t, err)
	if e.For(ScopeCollector).Len() != 0 || e.For(ScopeRouter).Len() != 2 {
		t.Errorf("collector %v; router %v", e.For(ScopeCollector), e.For(ScopeRouter))
	}
}

// TestErrorsAPI: what the mains do with the error: filter it, add their own
// problems at sink paths, print it.
func TestErrorsAPI(t *testing.T) {
	var zero Errors
	if zero.Err() != nil || zero.Len() != 0 || zero.Error() != "" {
		t.Error("the zero Errors is not empty")
	}
	var nilErrs *Errors
	if nilErrs.Err() != nil || nilErrs.Len() != 0 || nilErrs.For(ScopeRouter).Len() != 0 {
		t.Error("a nil *Errors is not empty")
	}
	// A true nil, not a typed nil in an interface.
	f, err := Parse([]byte(doc("", natsA, `{type: stdout, config: {id: s}}`)), nil)
	if err != nil {
		t.Fatal(err)
	}
	errs := f.Problems().For(ScopeRouter)
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	// The router's own problems sort among the file's, by the position of
	// the key (or of its nearest enclosing key).
	errs.Add(f.Sinks[1].Path+".subject", "bad template %q", "{x")
	errs.Add(f.Sinks[0].Path+".envelope.type_prefix", "must not be empty")
	errs.Add("", "router-wide")
	want := "spec.sinks[0].config.envelope.type_prefix: must not be empty\nspec.sinks[1].config.subject: bad template \"{x\"\nrouter-wide"
	if errs.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", errs.Error(), want)
	}
	var as *Errors
	if !errors.As(errs.Err(), &as) || as.Len() != 3 {
		t.Error("Err is not the *Errors")
	}
	l := errs.List()
	if l[0].Line != 9 || l[1].Line != 10 || l[2].Line != 0 {
		t.Errorf("positions %+v", l)
	}
	// Problems hands out a copy: adding to it leaves the file's alone.
	if f.Problems().Len() != 0 {
		t.Error("Problems shares its list")
	}
}
