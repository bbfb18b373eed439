// Package flagenv lets every command-line flag be given as an environment
// variable PGJET_<NAME> (upper case, dashes as underscores). A flag on the
// command line wins over the environment.
package flagenv

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	return "PGJET_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command
// line from its environment variable. Subcommands are the caller's: it
// passes the arguments after one.
func Parse(fs *flag.FlagSet, args []string) error {
	_, err := ParseSet(fs, args)
	return err
}

// ParseSet is Parse that also returns the names of the flags given, on the
// command line or in the environment: the ones that override a
// configuration file.
func ParseSet(fs *flag.FlagSet, args []string) (map[string]bool, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			// Secrets may come this way: never repeat the value.
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value for %s: %v", EnvName(f.Name), e)
			}
			given[f.Name] = true
		}
	})
	return given, err
}

// Strays names the variables of environ (os.Environ's form) that look like a
// misspelt flag of fs: PGJET_ names that set no flag but lie within two
// edits of one that does. A misspelt variable is otherwise ignored without
// a word; a name far from every flag may be meant for a pipeline file's
// ${...} or for the other binary, so it is left alone.
func Strays(fs *flag.FlagSet, environ []string) []string {
	known := map[string]string{} // env name: flag name
	fs.VisitAll(func(f *flag.Flag) { known[EnvName(f.Name)] = f.Name })
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "PGJET_") || known[name] != "" {
			continue
		}
		best, bestDist := "", 3
		for env := range known {
			if d := editDistance(name, env, bestDist); d < bestDist || d == bestDist && env < best {
				best, bestDist = env, d
			}
		}
		if best != "" && bestDist <= 2 {
			out = append(out, fmt.Sprintf("%s sets nothing: did you mean %s (--%s)? it is ignored", name, best, known[best]))
		}
	}
	return out
}

// editDistance is the Levenshtein distance of a and b, or more than limit
// once it is sure to exceed it.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d > limit || -d > limit {
		return limit + 1
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
