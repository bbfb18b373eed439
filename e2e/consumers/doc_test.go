package consumers

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgjet/pgjet/e2e/harness"
)

const docPath = "docs/consumers.md"

// block is a fenced code block of the doc and the marker comment above it.
type block struct {
	marker string // e.g. "file: e2e/consumers/go/durable/main.go", "nats-cli"
	line   int    // of the opening fence
	body   string
}

// docBlocks returns the doc's code blocks that follow a marker comment
// (<!-- marker -->, alone on the line before the fence).
func docBlocks(t *testing.T) []block {
	t.Helper()
	f, err := os.Open(harness.RepoFile(t, docPath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var marker string
	var cur *block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		case strings.HasPrefix(line, "```") && marker != "":
			cur = &block{marker: marker, line: n}
			marker = ""
		case strings.HasPrefix(line, "<!-- ") && strings.HasSuffix(line, " -->"):
			marker = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- "), " -->")
		default:
			marker = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// Invariant: the code docs/consumers.md shows is the code the tests run:
// each block marked <!-- file: PATH --> is that file, byte for byte, and
// every example file is shown.
func TestDocShowsTheExamples(t *testing.T) {
	shown := map[string]bool{}
	for _, b := range docBlocks(t) {
		path, ok := strings.CutPrefix(b.marker, "file: ")
		if !ok {
			continue
		}
		shown[path] = true
		want, err := os.ReadFile(harness.RepoFile(t, path))
		if err != nil {
			t.Errorf("%s:%d shows %s: %v", docPath, b.line, path, err)
			continue
		}
		if b.body != string(want) {
			t.Errorf("%s:%d differs from %s: copy the file into the block", docPath, b.line, path)
		}
	}
	var files []string
	for _, pattern := range []string{"go/*/main.go", "node/*.mjs", "python/*.py"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no example files found")
	}
	for _, f := range files {
		if path := "e2e/consumers/" + f; !shown[path] {
			t.Errorf("%s does not show %s: add it under a <!-- file: %s --> marker", docPath, path, path)
		}
	}
}

// Python is not run here (nats-py is not installable on this machine), but
// its example must at least compile.
func TestPythonExampleCompiles(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is missing: the Python example is neither run nor compiled here")
	}
	files, _ := filepath.Glob("python/*.py")
	for _, f := range files {
		cmd := exec.Command(py, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", f)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

// cliExpect is what each nats CLI command of the doc must print (a
// substring of its output); a command of the doc missing here fails the
// test, so that none goes unchecked.
var cliExpect = map[string]string{
	`nats sub 'postgres.>' --count 1`:                                                                        `"op":"update"`,
	`nats sub 'postgres.public.users.*' --count 1`:                                                           `"op":"update"`,
	`nats sub 'postgres.*.*.update' --count 1`:                                                               `"op":"update"`,
	`nats sub 'postgres.>' --stream PGJET_EVENTS --all --terminate-at-end`:                                   `"after":{"id":3,"name":"Edsger","email":"ewd@example.com"}`,
	`nats sub 'postgres.public.users.delete' --stream PGJET_EVENTS --all --terminate-at-end --subjects-only`: `postgres.public.users.delete`,
	`nats stream get PGJET_EVENTS 1`:                                                                         `Nats-Msg-Id: app.`,
	`nats consumer add PGJET_EVENTS audit --pull --filter 'postgres.public.>' --ack explicit --deliver all --max-deliver 10 --defaults`: `audit`,
	`nats consumer next PGJET_EVENTS audit --count 2`:                                `"op":"insert"`,
	`nats consumer info PGJET_EVENTS audit`:                                          `Unprocessed Messages`,
	`nats stream ls`:                                                                 `PGJET_EVENTS`,
	`nats stream info PGJET_EVENTS`:                                                  `postgres.*.*.*`,
	`nats stream edit PGJET_EVENTS --max-age 720h --force`:                           `30d0h0m0s`,
	`nats consumer ls PGJET_EVENTS`:                                                  `audit`,
	`nats consumer rm PGJET_EVENTS audit --force`:                                    ``,
	`nats stream purge PGJET_EVENTS --subject 'postgres.public.tmp.>' --force`:       `PGJET_EVENTS`,
	`nats stream subjects PGJET_EVENTS`:                                              `postgres._deadletter`,
	`nats sub 'postgres._deadletter' --stream PGJET_EVENTS --all --terminate-at-end`: `max_payload`,
}

// runCLIBlocks runs every command of the doc's blocks marked nats-cli with
// the nats CLI that `make consumer-tools` builds (bin/nats): each must exit
// 0 and print what cliExpect says. In a block marked "nats-cli live" each
// command is started, a row is inserted, and the command must end by itself.
func runCLIBlocks(t *testing.T, p *pipeline) {
	natsCLI := filepath.Join(filepath.Dir(harness.BinDir(t)+"/"), "nats")
	if _, err := os.Stat(natsCLI); err != nil {
		t.Fatalf("the nats CLI is missing (%v): run `make consumer-tools`", err)
	}
	env := append(os.Environ(), "NATS_URL="+p.nats.URL(), "PATH="+filepath.Dir(natsCLI)+":"+os.Getenv("PATH"),
		"HOME="+t.TempDir()) // no saved nats contexts
	ran := 0
	for _, b := range docBlocks(t) {
		if b.marker != "nats-cli" && b.marker != "nats-cli live" {
			continue
		}
		for _, line := range strings.Split(b.body, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			want, ok := cliExpect[line]
			if !ok {
				t.Errorf("%s:%d: no expectation for %q in cliExpect", docPath, b.line, line)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, "bash", "-c", line)
			cmd.Env = env
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if b.marker == "nats-cli live" {
				time.Sleep(time.Second) // let it subscribe
				p.exec(t, `UPDATE users SET name = name || '!' WHERE id = 1`)
			}
			err := cmd.Wait()
			cancel()
			ran++
			if err != nil {
				t.Errorf("%s: %v\n%s", line, err, out.String())
				continue
			}
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s printed\n%s\nwant it to contain %q", line, out.String(), want)
			}
			t.Logf("$ %s\n%s", line, out.String())
		}
	}
	if ran == 0 {
		t.Errorf("%s has no block marked <!-- nats-cli -->", docPath)
	}
}
