// Package flagenv lets every command-line flag be given as an environment
// variable PGJET_<NAME> (upper case, dashes as underscores). A flag on the
// command line wins over the environment.
package flagenv

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"strings"

	"github.com/pgjet/pgjet/shared/suggest"
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
		if best, d := suggest.Closest(name, maps.Keys(known)); best != "" && d <= 2 {
			out = append(out, fmt.Sprintf("%s sets nothing: did you mean %s (--%s)? it is ignored", name, best, known[best]))
		}
	}
	return out
}
