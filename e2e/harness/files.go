package harness

import (
	"os"
	"path/filepath"
	"testing"
)

// RepoFile returns the path of rel, a file of the repository (e.g. one of
// the examples in deploy/), failing the test when it is missing: tests use
// the committed examples, so that they cannot rot.
func RepoFile(t testing.TB, rel string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("repository file %s: %v", rel, err)
	}
	return p
}
