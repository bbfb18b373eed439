package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildAt builds pgjet-collector and pgjet-router as they were at commit
// (taken from the repository's history with git archive) into a temp dir
// and returns it, for tests of a rolling upgrade against released code. A
// clone without that history fails the test: it cannot be checked then.
func BuildAt(t testing.TB, commit string) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("finding the repository: %v", err)
	}
	src := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "src.tar")
	if out, err := exec.Command("git", "-C", root, "archive", "--format=tar", "-o", tarball, commit).CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v: %s (a shallow clone lacks the commit: fetch the history)", commit, err, out)
	}
	if out, err := exec.Command("tar", "-xf", tarball, "-C", src).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./collector/cmd/pgjet-collector", "./router/cmd/pgjet-router")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK="+filepath.Join(src, "go.work"), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pgjet at %s: %v\n%s", commit, err, out)
	}
	return bin
}
