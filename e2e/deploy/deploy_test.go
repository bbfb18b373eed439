// Package deploy checks the files under deploy/ without running them: systemd units
// (systemd-analyze), the container image and compose stack (Dockerfile parser, compose-go),
// Kubernetes manifests (decoded strictly into the API types) and NATS configs (nats-server's
// parser). Each check ties a file to what it runs: flags the binaries have, pipeline files
// that load with the environment given to them, paths that exist in the repository.
package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pgjet/pgjet/e2e/harness"
	"github.com/pgjet/pgjet/shared/flagenv"
	"github.com/pgjet/pgjet/shared/pipeline"
)

// Metrics ports by convention; the metrics flag serves /metrics, /healthz and /readyz.
const (
	collectorMetricsPort = 9090
	routerMetricsPort    = 9091
)

// pendingFlags are flags the deploy files may use before the binaries have them
// (given as PGJET_*, which a binary without the flag ignores); once `-h` lists one,
// the test says so and its entry goes. None now.
var pendingFlags = map[string]bool{}

// root is the repository root: the directory holding go.work above the test's.
func root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the working directory")
		}
		dir = parent
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	flagsOnce sync.Map // binary name -> map[string]bool
	flagLine  = regexp.MustCompile(`(?m)^  --?([a-z0-9][a-z0-9-]*)`)
)

// flags lists the flags binary name (pgjet-collector, pgjet-router) prints with -h.
func flags(t testing.TB, name string) map[string]bool {
	t.Helper()
	if v, ok := flagsOnce.Load(name); ok {
		return v.(map[string]bool)
	}
	bin := filepath.Join(harness.BinDir(t), name)
	cmd := exec.Command(bin, "-h")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, _ := cmd.CombinedOutput() // -h exits 0 or 2 depending on the flag package
	set := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		set[m[1]] = true
	}
	if !set["config"] || !set["nats"] {
		t.Fatalf("%s -h lists no --config or --nats flag:\n%s", name, out)
	}
	flagsOnce.Store(name, set)
	return set
}

// checkFlag fails unless binary name has flag f (or f is pending).
func checkFlag(t *testing.T, where, name, f string) {
	t.Helper()
	has := flags(t, name)
	switch {
	case has[f] && pendingFlags[f]:
		t.Logf("%s: %s now has --%s: drop it from pendingFlags", where, name, f)
	case has[f], pendingFlags[f]:
	default:
		t.Errorf("%s: %s has no flag --%s", where, name, f)
	}
}

// checkArgs checks the --flags of a command line given to binary name.
func checkArgs(t *testing.T, where, name string, args []string) {
	t.Helper()
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		f := strings.TrimLeft(a, "-")
		f, _, _ = strings.Cut(f, "=")
		checkFlag(t, where, name, f)
	}
}

// pipelineVars are the ${VARS} the pipeline files under deploy/pipeline use; PGJET_*
// variables besides these must name flags.
func pipelineVars(t testing.TB) map[string]bool {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root(t), "deploy", "pipeline", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no deploy/pipeline/*.yaml (%v)", err)
	}
	vars := map[string]bool{}
	ref := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)
	for _, p := range paths {
		for _, m := range ref.FindAllStringSubmatch(string(readFile(t, p)), -1) {
			vars[m[1]] = true
		}
	}
	return vars
}

// checkEnvNames checks that every PGJET_* name in env is a flag of binary name (or one of
// the pipeline files' own variables).
func checkEnvNames(t *testing.T, where, name string, env map[string]string) {
	t.Helper()
	byEnv := map[string]string{}
	for f := range flags(t, name) {
		byEnv[flagenv.EnvName(f)] = f
	}
	for f := range pendingFlags {
		byEnv[flagenv.EnvName(f)] = f
	}
	vars := pipelineVars(t)
	for _, k := range sortedKeys(env) {
		if !strings.HasPrefix(k, "PGJET_") {
			continue
		}
		f, ok := byEnv[k]
		if !ok && vars[k] {
			continue // a pipeline file's own variable
		}
		if !ok {
			t.Errorf("%s: %s is no flag of %s", where, k, name)
			continue
		}
		checkFlag(t, where, name, f)
	}
}

// loadPipeline parses a pipeline file with env as its environment and fails on the
// problems scope reads (pipeline.ScopeCollector or ScopeRouter).
func loadPipeline(t *testing.T, where string, data []byte, env map[string]string, scope pipeline.Scope) *pipeline.File {
	t.Helper()
	f, _ := pipeline.Parse(data, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if errs := f.Problems().For(scope); errs.Len() > 0 {
		t.Errorf("%s: the pipeline file does not load:\n%v", where, errs)
	}
	return f
}

// checkConfig runs binary name with --config path --check-config and env: the
// binary's own checks (for a router: subject templates, envelopes, streams).
func checkConfig(t *testing.T, where, name, path string, env map[string]string) {
	t.Helper()
	bin := filepath.Join(harness.BinDir(t), name)
	cmd := exec.Command(bin, "--config", path, "--check-config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, k := range sortedKeys(env) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: %s --check-config: %v\n%s", where, name, err, out)
	}
}

// parseEnvFile reads KEY=value lines; with commented, also the "#KEY=value" lines
// (the alternatives an example shows).
func parseEnvFile(t testing.TB, path string, commented bool) map[string]string {
	t.Helper()
	env := map[string]string{}
	assign := regexp.MustCompile(`^(#?)([A-Z][A-Z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		m := assign.FindStringSubmatch(sc.Text())
		if m == nil || (m[1] == "#" && !commented) {
			continue
		}
		env[m[2]] = m[3]
	}
	return env
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
