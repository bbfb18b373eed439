package pipeline

import (
	"fmt"
	"sort"
	"strings"
)

// Scope selects the problems one process cares about: a collector must not
// refuse to start over a sink only routers read, nor a router over the DSN.
type Scope int

const (
	// ScopeAll keeps every problem (a check of the whole file).
	ScopeAll Scope = iota
	// ScopeCollector keeps apiVersion, kind, metadata, spec.source,
	// spec.raw_stream, spec.batch, spec.commit_policy, and the connection
	// keys of the sink the raw stream's connection comes from.
	ScopeCollector
	// ScopeRouter keeps apiVersion, kind, metadata, spec.raw_stream and
	// spec.sinks.
	ScopeRouter
)

// Problem is one thing wrong with the file.
type Problem struct {
	// Path is the key the problem is about, "spec.sinks[1].config.subject";
	// "" for the file as a whole.
	Path string
	// Message never holds a secret or an expanded value.
	Message string
	// Line and Column locate Path in the file (see Errors.List); 0 when
	// unknown. Set by List.
	Line, Column int
	// Flag is the flag (or its PGJET_* variable) that gave the value at
	// Path, "--group": the problem is then told in the flag's words
	// (String), without the path of a key the user never wrote.
	Flag string
	// valueFirst: Message starts with the value, which follows the flag.
	valueFirst bool
}

// Errors lists every problem of a pipeline file, so that one run shows
// them all. The zero value is ready to use; methods accept a nil *Errors.
type Errors struct {
	list []Problem
	// at locates paths of the file, so problems added later (by the
	// router) sort among the others.
	at map[string]pos
	// rawFrom is the sink config path the raw connection comes from ("" if
	// none): its connection keys are the collector's too.
	rawFrom string
	// flags holds, by path, the flag that overrode the value there.
	flags map[string]string
}

type pos struct{ line, col int }

// Add records a problem at path (see Problem.Path).
func (e *Errors) Add(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.add(Problem{Path: path, Message: msg, valueFirst: strings.HasPrefix(msg, `"`)})
}

func (e *Errors) add(p Problem) {
	p.Flag = e.flags[p.Path]
	e.list = append(e.list, p)
}

// AddValue records a bad value at path: what is wrong with it ("unknown
// value"; "" when the advice says it all), the value as it may be shown
// (quoted; never a secret), and what to use instead. In the file's words
// "<what> <shown>: <advice>"; from a flag "bad --flag <shown>: <advice>".
func (e *Errors) AddValue(path, what, shown, advice string) {
	p := Problem{Path: path, Message: shown + ": " + advice, valueFirst: true}
	if what != "" && e.flags[path] == "" {
		p.Message = what + " " + p.Message
	}
	e.add(p)
}

// Flag is the flag that gave the value at path, "" for the file's own.
func (e *Errors) Flag(path string) string {
	if e == nil {
		return ""
	}
	return e.flags[path]
}

// locate is where path is in the file. A key the file lacks ("is
// required", or a default the router rejects) is placed at the end of the
// nearest enclosing key that is there, after the problems inside it; the
// file as a whole (path "") has no position. Positions are looked up when
// listing, since the decoder records nested keys only as it reaches them.
func (e *Errors) locate(path string) (at pos, after bool) {
	if p, ok := e.at[path]; ok || path == "" {
		return p, false
	}
	for a := parent(path); ; a = parent(a) {
		if _, ok := e.at[a]; ok || a == "" {
			for k, p := range e.at {
				if (a == "" || under(k, a)) && (p.line > at.line || p.line == at.line && p.col > at.col) {
					at = p
				}
			}
			return at, true
		}
	}
}

// parent is path without its last key or index: "a.b[1]" -> "a.b" -> "a".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// Len is the number of problems.
func (e *Errors) Len() int {
	if e == nil {
		return 0
	}
	return len(e.list)
}

// Err is e as an error, or nil (a true nil interface) when e is empty.
func (e *Errors) Err() error {
	if e.Len() == 0 {
		return nil
	}
	return e
}

// List returns the problems in file order (see locate); those without a
// position last, in the order they were added.
func (e *Errors) List() []Problem {
	if e == nil {
		return nil
	}
	type sorted struct {
		Problem
		after bool
	}
	l := make([]sorted, len(e.list))
	for i, p := range e.list {
		at, after := e.locate(p.Path)
		p.Line, p.Column = at.line, at.col
		l[i] = sorted{p, after}
	}
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return !a.after && b.after
	})
	out := make([]Problem, len(l))
	for i, p := range l {
		out[i] = p.Problem
	}
	return out
}

// Error is one "path: message" line per problem, in file order.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.List() {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// For returns the problems scope s reads; e itself is unchanged. Problems
// added to the result sort with the others.
func (e *Errors) For(s Scope) *Errors {
	out := &Errors{}
	if e == nil {
		return out
	}
	out.at, out.rawFrom, out.flags = e.at, e.rawFrom, e.flags
	for _, p := range e.list {
		if e.reads(s, p.Path) {
			out.list = append(out.list, p)
		}
	}
	return out
}

// connKeys are the keys of a Conn block.
var connKeys = []string{"url", "credentials_file", "nkey_file", "username", "password", "password_file", "token", "token_file", "tls"}

func (e *Errors) reads(s Scope, path string) bool {
	if s == ScopeAll {
		return true
	}
	collector := []string{"spec.source", "spec.batch", "spec.commit_policy"}
	router := []string{"spec.sinks"}
	for _, p := range collector {
		if under(path, p) {
			return s == ScopeCollector
		}
	}
	if under(path, "spec.sinks") && s == ScopeCollector && e.rawFrom != "" {
		for _, k := range connKeys {
			if under(path, e.rawFrom+"."+k) {
				return true
			}
		}
	}
	for _, p := range router {
		if under(path, p) {
			return s == ScopeRouter
		}
	}
	// apiVersion, kind, metadata, spec.raw_stream, and what belongs to no
	// section (unknown keys, the file as a whole): both read it.
	return true
}

// under reports whether path is prefix or inside it.
func under(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	rest := path[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}
