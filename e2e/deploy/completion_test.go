package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgjet/pgjet/e2e/harness"
)

// Invariant: each binary's --help names its subcommands before its flags,
// and its completion scripts work: bash completes subcommands and flags
// (a subcommand's own too), zsh loads the script.
func TestHelpAndCompletion(t *testing.T) {
	for _, tc := range []struct {
		bin      string
		commands []string
		complete map[string]string // command line (last word being completed): completions
	}{
		{"pgjet-collector", []string{"check", "status", "completion"}, map[string]string{
			"pgjet-collector st":                 "status",
			"pgjet-collector --recreate":         "--recreate-slot",
			"pgjet-collector --log-format j":     "json",
			"pgjet-collector check --embedded-l": "--embedded-leaf --embedded-leaf-creds --embedded-leaf-password --embedded-leaf-password-file --embedded-leaf-tls-ca --embedded-leaf-tls-cert --embedded-leaf-tls-key --embedded-leaf-user",
		}},
		{"pgjet-router", []string{"check", "status", "replay", "completion"}, map[string]string{
			"pgjet-router re":               "replay",
			"pgjet-router replay --from":    "--from-seq --from-lsn --from-time",
			"pgjet-router --envelope cl":    "cloudevents",
			"pgjet-router --stdout json":    "json json-pretty",
			"pgjet-router --cloudevents-da": "--cloudevents-data",
		}},
	} {
		bin := filepath.Join(harness.BinDir(t), tc.bin)
		out, err := exec.Command(bin, "-h").CombinedOutput()
		if err != nil {
			t.Fatalf("%s -h: %v\n%s", tc.bin, err, out)
		}
		help := string(out)
		cmds, flags := strings.Index(help, "\nCommands:\n"), strings.Index(help, "\n  --")
		if cmds < 0 || flags < 0 || cmds > flags {
			t.Errorf("%s -h does not list its commands before its flags:\n%s", tc.bin, help)
		}
		for _, c := range tc.commands {
			if !strings.Contains(help[cmds:flags], "\n  "+c+" ") {
				t.Errorf("%s -h does not name command %s", tc.bin, c)
			}
		}

		script := filepath.Join(t.TempDir(), tc.bin+".bash")
		if out, err := exec.Command(bin, "completion", "bash").Output(); err != nil {
			t.Fatalf("%s completion bash: %v", tc.bin, err)
		} else if err := os.WriteFile(script, out, 0o644); err != nil {
			t.Fatal(err)
		}
		fn := "_" + strings.ReplaceAll(tc.bin, "-", "_")
		for line, want := range tc.complete {
			words := strings.Fields(line)
			cmd := exec.Command("bash", "--norc", "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); `+fn+`; echo "${COMPREPLY[*]}"`, "bash", script)
			cmd.Args = append(cmd.Args, words...)
			out, err := cmd.CombinedOutput()
			if got := strings.TrimSpace(string(out)); err != nil || got != want {
				t.Errorf("%s<TAB>: %q (%v), want %q", line, got, err, want)
			}
		}

		zsh, err := exec.LookPath("zsh")
		if err != nil {
			if os.Getenv("CI") != "" || os.Geteuid() == 0 {
				t.Fatal("zsh is missing: run `make deploy-tools`")
			}
			t.Log("SKIPPED LOUDLY: zsh is missing, the zsh completion is NOT checked")
			continue
		}
		zscript := filepath.Join(t.TempDir(), "_"+tc.bin)
		if out, err := exec.Command(bin, "completion", "zsh").Output(); err != nil {
			t.Fatalf("%s completion zsh: %v", tc.bin, err)
		} else if err := os.WriteFile(zscript, out, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = exec.Command(zsh, "-f", "-c", `autoload -Uz compinit && compinit -u -D && source "$1" && print -r -- $_comps[$2]`, "zsh", zscript, tc.bin).CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != fn {
			t.Errorf("%s: sourcing the zsh completion: %q (%v), want %s registered", tc.bin, got, err, fn)
		}
	}
}
