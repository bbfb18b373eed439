package help

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sample() (*Page, *flag.FlagSet) {
	fs := flag.NewFlagSet("pgjet-test", flag.ContinueOnError)
	fs.String("dsn", "", "PostgreSQL connection string")
	fs.String("config", "", "pipeline file")
	fs.Duration("linger", 10*time.Millisecond, "least time between publishes")
	fs.String("log-level", "info", "debug, info, warn or error")
	fs.Bool("standby", false, "wait for the slot")
	fs.String("forgotten", "", "in no group")
	p := &Page{
		Name:     "pgjet-test",
		Summary:  "tests the help package.",
		Usage:    []string{"--config PIPELINE.yaml [flags]"},
		Commands: []Command{{Name: "check", Summary: "check the setup"}, {Name: "replay", Summary: "rebuild an output", Flags: []string{"from-seq"}}, CompletionCommand},
		Groups: []Group{
			{Title: "Postgres", Flags: []string{"dsn", "standby"}},
			{Title: "Operations", Flags: []string{"config", "linger", "log-level"}},
		},
		Notes:   []string{"Every flag can also be given as PGJET_<NAME>."},
		Files:   []string{"config"},
		Choices: map[string][]string{"log-level": {"debug", "info", "warn", "error"}},
	}
	return p, fs
}

func TestWrite(t *testing.T) {
	p, fs := sample()
	var b strings.Builder
	p.Write(&b, fs)
	out := b.String()
	// Commands before flags, groups in their order, ungrouped flags last.
	order := []string{"Usage:\n  pgjet-test --config PIPELINE.yaml [flags]", "Commands:\n  check       check the setup", "completion  print a shell completion script",
		"Postgres:\n  --dsn string\n        PostgreSQL connection string  [PGJET_DSN]\n  --standby\n        wait for the slot  [PGJET_STANDBY]",
		"Operations:\n  --config string", "  --linger duration\n        least time between publishes (default 10ms)  [PGJET_LINGER]",
		"  --log-level string\n        debug, info, warn or error (default info)",
		"Other:\n  --forgotten string", "Every flag can also be given as PGJET_<NAME>."}
	at := 0
	for _, want := range order {
		i := strings.Index(out[at:], want)
		if i < 0 {
			t.Fatalf("help lacks, after byte %d, %q:\n%s", at, want, out)
		}
		at += i + len(want)
	}
	if got := p.Ungrouped(fs); len(got) != 1 || got[0] != "forgotten" {
		t.Errorf("Ungrouped = %v, want [forgotten]", got)
	}
	p.Groups[0].Flags = append(p.Groups[0].Flags, "gone")
	if got := p.Unknown(fs); len(got) != 1 || got[0] != "gone" {
		t.Errorf("Unknown = %v, want [gone]", got)
	}
}

// complete runs the bash script's function on a command line whose last
// word is being completed, and returns COMPREPLY.
func complete(t *testing.T, script string, words ...string) []string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash is missing")
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	cmd := exec.Command(bash, "--norc", "-c", `source "$1"; COMP_WORDS=(`+strings.Join(quoted, " ")+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _pgjet_test; printf '%s\n' "${COMPREPLY[@]}"`, "bash", script)
	cmd.Dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(cmd.Dir, "pipeline.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", words, err, out)
	}
	return strings.Fields(string(out))
}

func TestBashCompletion(t *testing.T) {
	p, fs := sample()
	var b strings.Builder
	p.Bash(&b, fs)
	script := filepath.Join(t.TempDir(), "completion.bash")
	if err := os.WriteFile(script, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"pgjet-test", ""}, "check replay completion"},
		{[]string{"pgjet-test", "re"}, "replay"},
		{[]string{"pgjet-test", "--d"}, "--dsn"},
		{[]string{"pgjet-test", "--l"}, "--linger --log-level"},
		{[]string{"pgjet-test", "replay", "--from"}, "--from-seq"},
		{[]string{"pgjet-test", "--log-level", "w"}, "warn"},
		{[]string{"pgjet-test", "--config", "pipe"}, "pipeline.yaml"},
		{[]string{"pgjet-test", "--dsn", ""}, ""},                  // a value: no flags offered
		{[]string{"pgjet-test", "--standby", "--st"}, "--standby"}, // a switch takes no value
	} {
		if got := strings.Join(complete(t, script, tc.words...), " "); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		if os.Getenv("CI") != "" || os.Geteuid() == 0 {
			t.Fatal("zsh is missing: run `make deploy-tools` (apt-get install -y zsh)")
		}
		t.Skip("SKIPPED LOUDLY: zsh is missing, the zsh completion script is NOT checked; `sudo apt-get install -y zsh`")
	}
	p, fs := sample()
	var b strings.Builder
	p.Zsh(&b, fs)
	script := filepath.Join(t.TempDir(), "_pgjet-test")
	if err := os.WriteFile(script, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s\n%s", err, out, b.String())
	}
	// Sourced after compinit it registers itself for the command.
	out, err := exec.Command(zsh, "-f", "-c", `autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- $_comps[pgjet-test]`, "zsh", script).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "_pgjet_test" {
		t.Errorf("sourcing the zsh script: %v %q", err, out)
	}
}
