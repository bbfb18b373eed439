// Package help is a command's --help and its shell completion: the
// subcommands first, then the flags grouped by concern (not one
// alphabetical list of fifty), and bash and zsh completion scripts made
// from the same description, so that a flag or subcommand added to a
// binary appears in all three.
package help

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pgjet/pgjet/shared/flagenv"
)

// Command is a subcommand.
type Command struct {
	Name    string
	Summary string
	// Flags are the names of flags only this subcommand has (without
	// "--"), for completion; it takes the binary's flags too.
	Flags []string
}

// Group is a heading and the flags under it, in the order shown.
type Group struct {
	Title string
	Flags []string
}

// Page describes a binary's command line.
type Page struct {
	Name     string   // the binary, e.g. pgjet-collector
	Summary  string   // what it does, one sentence
	Usage    []string // synopsis lines after the name, e.g. "--config PIPELINE.yaml [flags]"
	Commands []Command
	Groups   []Group
	Notes    []string // paragraphs after the flags
	// Files are flags whose value is a path: completed with file names.
	Files []string
	// Choices are flags with a fixed set of values, for completion.
	Choices map[string][]string
}

// Write prints the page for the flags of fs: usage, commands, the groups,
// then any flag of fs no group names under "Other" (so none is hidden),
// then the notes.
func (p *Page) Write(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n", p.Name, p.Summary)
	for _, u := range p.Usage {
		fmt.Fprintf(w, "  %s %s\n", p.Name, u)
	}
	if len(p.Commands) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		width := 0
		for _, c := range p.Commands {
			width = max(width, len(c.Name))
		}
		for _, c := range p.Commands {
			fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
		}
		fmt.Fprintf(w, "Run `%s COMMAND -h` for a command's flags.\n", p.Name)
	}
	shown := map[string]bool{}
	for _, g := range p.Groups {
		var flags []*flag.Flag
		for _, name := range g.Flags {
			if f := fs.Lookup(name); f != nil && !shown[name] {
				flags = append(flags, f)
				shown[name] = true
			}
		}
		writeGroup(w, g.Title, flags)
	}
	var other []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !shown[f.Name] {
			other = append(other, f)
		}
	})
	writeGroup(w, "Other", other)
	for _, n := range p.Notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
}

// Ungrouped lists the flags of fs that no group of p names: a test of a
// binary asserts there are none.
func (p *Page) Ungrouped(fs *flag.FlagSet) []string {
	grouped := map[string]bool{}
	for _, g := range p.Groups {
		for _, f := range g.Flags {
			grouped[f] = true
		}
	}
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if !grouped[f.Name] {
			out = append(out, f.Name)
		}
	})
	return out
}

// Unknown lists the flags p names that fs does not have.
func (p *Page) Unknown(fs *flag.FlagSet) []string {
	var out []string
	for _, g := range p.Groups {
		for _, f := range g.Flags {
			if fs.Lookup(f) == nil {
				out = append(out, f)
			}
		}
	}
	return out
}

func writeGroup(w io.Writer, title string, flags []*flag.Flag) {
	if len(flags) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, f := range flags {
		value, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if value != "" {
			line += " " + value
		}
		fmt.Fprintf(w, "%s\n        %s", line, strings.ReplaceAll(usage, "\n", "\n        "))
		if def := defaultValue(f); def != "" {
			fmt.Fprintf(w, " (default %s)", def)
		}
		fmt.Fprintf(w, "  [%s]\n", flagenv.EnvName(f.Name))
	}
}

// defaultValue is f's default as --help shows it, "" for a zero value.
func defaultValue(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return ""
	}
	if _, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
		return f.DefValue
	}
	if strings.ContainsAny(f.DefValue, " \t") {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}

// takesValue reports whether f is given a value (--f V), not a switch.
func takesValue(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// commandNames are the subcommands and "completion".
func (p *Page) commandNames() []string {
	var names []string
	for _, c := range p.Commands {
		names = append(names, c.Name)
	}
	return names
}

// flagNames returns --name for each flag of fs and of the commands, the
// ones that take a value separately.
func (p *Page) flagNames(fs *flag.FlagSet) (all, valued []string) {
	fs.VisitAll(func(f *flag.Flag) {
		all = append(all, "--"+f.Name)
		if takesValue(f) {
			valued = append(valued, "--"+f.Name)
		}
	})
	for _, c := range p.Commands {
		for _, f := range c.Flags {
			if !slices.Contains(all, "--"+f) {
				all = append(all, "--"+f)
				valued = append(valued, "--"+f)
			}
		}
	}
	return all, valued
}

// funcName is the completion function's name: _pgjet_collector.
func (p *Page) funcName() string {
	return "_" + strings.NewReplacer("-", "_", ".", "_").Replace(p.Name)
}

// Bash writes a bash completion script: source it, or install it as
// /etc/bash_completion.d/NAME. It completes subcommands, flags, the values
// of flags with choices, and file names for path flags.
func (p *Page) Bash(w io.Writer, fs *flag.FlagSet) {
	all, valued := p.flagNames(fs)
	fn := p.funcName()
	fmt.Fprintf(w, "# bash completion for %s (generated by `%s completion bash`)\n", p.Name, p.Name)
	fmt.Fprintf(w, "%s() {\n", fn)
	fmt.Fprintf(w, "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	fmt.Fprintf(w, "\tCOMPREPLY=()\n")
	fmt.Fprintf(w, "\tcase $prev in\n")
	for _, name := range sortedKeys(p.Choices) {
		fmt.Fprintf(w, "\t--%s) COMPREPLY=($(compgen -W %s -- \"$cur\")); return ;;\n", name, shellQuote(strings.Join(p.Choices[name], " ")))
	}
	if len(p.Files) > 0 {
		fmt.Fprintf(w, "\t--%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", strings.Join(p.Files, "|--"))
	}
	if len(valued) > 0 {
		fmt.Fprintf(w, "\t%s) return ;;\n", strings.Join(valued, "|"))
	}
	fmt.Fprintf(w, "\tesac\n")
	fmt.Fprintf(w, "\tif [[ $COMP_CWORD -eq 1 && $cur != -* ]]; then\n")
	fmt.Fprintf(w, "\t\tCOMPREPLY=($(compgen -W %s -- \"$cur\"))\n", shellQuote(strings.Join(p.commandNames(), " ")))
	fmt.Fprintf(w, "\t\treturn\n\tfi\n")
	fmt.Fprintf(w, "\tCOMPREPLY=($(compgen -W %s -- \"$cur\"))\n", shellQuote(strings.Join(all, " ")))
	fmt.Fprintf(w, "}\ncomplete -F %s %s\n", fn, p.Name)
}

// Zsh writes a zsh completion script: put it as _NAME in a directory of
// $fpath, or source it after compinit.
func (p *Page) Zsh(w io.Writer, fs *flag.FlagSet) {
	fn := p.funcName()
	fmt.Fprintf(w, "#compdef %s\n# zsh completion for %s (generated by `%s completion zsh`)\n", p.Name, p.Name, p.Name)
	fmt.Fprintf(w, "%s() {\n\tlocal -a commands args\n\tcommands=(\n", fn)
	for _, c := range p.Commands {
		fmt.Fprintf(w, "\t\t%s\n", shellQuote(c.Name+":"+zshEscape(c.Summary)))
	}
	fmt.Fprintf(w, "\t)\n\targs=(\n")
	isFile := map[string]bool{}
	for _, f := range p.Files {
		isFile[f] = true
	}
	spec := func(name, usage string, valued bool) string {
		s := "--" + name
		if valued {
			s += "="
		}
		s += "[" + zshEscape(firstSentence(usage)) + "]"
		switch {
		case !valued:
		case isFile[name]:
			s += ":" + name + ":_files"
		case len(p.Choices[name]) > 0:
			s += ":" + name + ":(" + strings.Join(p.Choices[name], " ") + ")"
		default:
			s += ":" + name + ": "
		}
		return s
	}
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		seen[f.Name] = true
		fmt.Fprintf(w, "\t\t%s\n", shellQuote(spec(f.Name, f.Usage, takesValue(f))))
	})
	for _, c := range p.Commands {
		for _, f := range c.Flags {
			if !seen[f] {
				seen[f] = true
				fmt.Fprintf(w, "\t\t%s\n", shellQuote(spec(f, c.Name+" flag", true)))
			}
		}
	}
	fmt.Fprintf(w, "\t)\n")
	fmt.Fprintf(w, "\tif (( CURRENT == 2 )) && [[ $words[CURRENT] != -* ]]; then\n")
	fmt.Fprintf(w, "\t\t_describe command commands\n\telse\n\t\t_arguments $args\n\tfi\n}\n")
	// Autoloaded from $fpath the file is the function's body; sourced, it
	// registers the function.
	fmt.Fprintf(w, "if [[ $funcstack[1] == %s ]]; then\n\t%s \"$@\"\nelse\n\tcompdef %s %s\nfi\n", fn, fn, fn, p.Name)
}

// Completion writes the script for shell (bash or zsh).
func (p *Page) Completion(w io.Writer, fs *flag.FlagSet, shell string) error {
	switch shell {
	case "bash":
		p.Bash(w, fs)
	case "zsh":
		p.Zsh(w, fs)
	default:
		return fmt.Errorf("completion for %q: use bash or zsh", shell)
	}
	return nil
}

// CompletionCommand is the "completion" subcommand's entry in Commands.
var CompletionCommand = Command{Name: "completion", Summary: "print a shell completion script: completion bash|zsh"}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i > 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "; "); i > 0 && i < 100 {
		s = s[:i]
	}
	return s
}

// zshEscape makes s safe inside an _arguments description ([...]) and a
// _describe entry.
func zshEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "[", `\[`, "]", `\]`, ":", `\:`).Replace(s)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
