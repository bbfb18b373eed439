// Package harness runs pgjet's real binaries and a real nats-server as
// processes for end-to-end tests: start, SIGTERM, kill -9, restart, capture
// logs and peak memory. Postgres comes from shared/pgtest; the delivery
// checks from e2e/check.
package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Binaries that `make build` puts in bin/.
var binaries = []string{"pgjet-collector", "pgjet-router", "pgjet", "nats-server"}

// BinDir returns the directory with the built binaries: $PGJET_BIN_DIR (set
// by the Makefile) or bin/ at the repository root. It fails the test when a
// binary is missing: the tests exercise the binaries, never a stale copy on PATH.
func BinDir(t testing.TB) string {
	t.Helper()
	dir := binDir(t)
	for _, name := range binaries {
		binPath(t, dir, name)
	}
	return dir
}

func binDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("PGJET_BIN_DIR"); dir != "" {
		return dir
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("finding the built binaries: %v: set PGJET_BIN_DIR or run `make test`", err)
	}
	return filepath.Join(root, "bin")
}

func binPath(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("binary %s is missing: run `make build` at the repository root (or set PGJET_BIN_DIR)", p)
	}
	return p
}

// repoRoot walks up from the working directory (go test runs in the
// package's directory) to the directory holding go.work.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work in %s or above", wd)
		}
		dir = parent
	}
}
