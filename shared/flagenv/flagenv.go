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
