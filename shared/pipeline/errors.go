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
	// Line and Column locate Path (or its nearest enclosing key) in the
	// file; 0 when unknown.
	Line, Column int
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
}

type pos struct{ line, col int }

// Add records a problem at path (see Problem.Path).
func (e *Errors) Add(path, format string, args ...any) {
	p := Problem{Path: path, Message: fmt.Sprintf(format, args...)}
	for q := path; ; q = parent(q) {
		if at, ok := e.at[q]; ok {
			p.Line, p.Column = at.line, at.col
			break
		}
		if q == "" {
			break
		}
	}
	e.list = append(e.list, p)
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

// List returns the problems in file order; those of unknown position last,
// in the order they were added.
func (e *Errors) List() []Problem {
	if e == nil {
		return nil
	}
	l := append([]Problem(nil), e.list...)
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if (a.Line == 0) != (b.Line == 0) {
			return b.Line == 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return l
}

// Error is one "path: message" line per problem, in file order.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, p := range e.List() {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Path != "" {
			b.WriteString(p.Path)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
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
	out.at, out.rawFrom = e.at, e.rawFrom
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
