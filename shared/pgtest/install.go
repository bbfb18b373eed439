package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// VersionEnv names the variable that picks the PostgreSQL major version the
// tests run against (e.g. 17). Unset: the newest server on the host.
const VersionEnv = "PGJET_PG_VERSION"

// RootfsEnv names a root filesystem holding the server binaries of
// $PGJET_PG_VERSION (Debian's layout, /usr/lib/postgresql/N/bin). Unset:
// RootfsDir(N). scripts/pg-rootfs.sh N builds one with debootstrap.
const RootfsEnv = "PGJET_PG_ROOTFS"

// install is where a server's binaries are: on the host, or inside a root
// filesystem in which they run under chroot(2). Newer majors are not in the
// host's Debian release, but a root filesystem of a newer one runs them
// unchanged, sharing the host's network (tests connect over TCP).
type install struct {
	root string // "" on the host
	bin  string // the bin dir as seen from inside root
}

// RootfsDir is where scripts/pg-rootfs.sh puts the root filesystem of
// major version n by default.
func RootfsDir(n int) string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "pgjet", fmt.Sprintf("postgres-%d", n))
}

// findInstall resolves $PG_BIN, $PGJET_PG_VERSION and $PGJET_PG_ROOTFS.
func findInstall() (install, error) {
	want := os.Getenv(VersionEnv)
	if want == "" {
		bin, err := BinDir()
		return install{bin: bin}, err
	}
	n, err := strconv.Atoi(want)
	if err != nil || n < 10 {
		return install{}, fmt.Errorf("%s=%q: want a PostgreSQL major version such as 17", VersionEnv, want)
	}
	if d := os.Getenv("PG_BIN"); d != "" {
		if got := binMajor(d); got != n {
			return install{}, fmt.Errorf("PG_BIN=%s is PostgreSQL %d but %s=%d: unset one of them", d, got, VersionEnv, n)
		}
		return install{bin: d}, nil
	}
	bin := fmt.Sprintf("/usr/lib/postgresql/%d/bin", n)
	if isFile(filepath.Join(bin, "initdb")) {
		return install{bin: bin}, nil
	}
	root := os.Getenv(RootfsEnv)
	if root == "" {
		root = RootfsDir(n)
	}
	if !isFile(filepath.Join(root, bin, "initdb")) {
		return install{}, fmt.Errorf("PostgreSQL %d is neither on this host (%s) nor in a root filesystem at %s: run scripts/pg-rootfs.sh %d (debootstrap, about 5 minutes), or set %s", n, bin, root, n, RootfsEnv)
	}
	if os.Geteuid() != 0 {
		return install{}, fmt.Errorf("PostgreSQL %d runs from the root filesystem %s under chroot, which needs root", n, root)
	}
	return install{root: root, bin: bin}, nil
}

// BinDir finds the host's server binaries: $PG_BIN, `pg_config --bindir`,
// or the newest /usr/lib/postgresql/*/bin (Debian layout).
func BinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	var cands []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		cands = append(cands, strings.TrimSpace(string(out)))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(debian, func(i, j int) bool { return binMajor(debian[i]) > binMajor(debian[j]) })
	cands = append(cands, debian...)
	for _, d := range cands {
		if isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries not found (initdb): install Debian's postgresql package (apt-get install -y postgresql) or set PG_BIN")
}

// binMajor is the major version of Debian's /usr/lib/postgresql/N/bin, or
// what `pg_config`-less `postgres --version` says elsewhere.
func binMajor(binDir string) int {
	if n, err := strconv.Atoi(filepath.Base(filepath.Dir(binDir))); err == nil {
		return n
	}
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return 0
	}
	f := strings.Fields(string(out)) // postgres (PostgreSQL) 17.12 ...
	if len(f) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(strings.SplitN(f[2], ".", 2)[0])
	return n
}

// mkTemp makes a cluster directory that the server can see: inside the root
// filesystem when there is one.
func (in install) mkTemp() (string, error) {
	if in.root == "" {
		return os.MkdirTemp("", "pgjet-pg-")
	}
	tmp := filepath.Join(in.root, "tmp")
	if err := os.MkdirAll(tmp, 0o1777); err != nil {
		return "", err
	}
	return os.MkdirTemp(tmp, "pgjet-pg-")
}

// inner is host path p as the server sees it.
func (in install) inner(p string) string {
	if in.root == "" {
		return p
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(p, in.root), "/")
}

// command runs server binary name as the server's OS user: as root that is
// "postgres" (initdb and postgres refuse root), inside the root filesystem
// when there is one.
func (in install) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(in.bin, name)
	switch {
	case in.root != "":
		return exec.CommandContext(ctx, "chroot", append([]string{in.root, "runuser", "-u", "postgres", "--", path}, args...)...)
	case os.Geteuid() == 0:
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

// owner is the uid and gid that must own a cluster's files; ok is false
// when the caller runs the server itself (not root).
func (in install) owner() (uid, gid int, ok bool, err error) {
	if os.Geteuid() != 0 {
		return 0, 0, false, nil
	}
	passwd := filepath.Join(in.root, "/etc/passwd")
	uid, gid, found, err := lookupUser(passwd, "postgres")
	if err != nil {
		return 0, 0, true, err
	}
	if !found {
		return 0, 0, true, fmt.Errorf(`running as root needs an OS user "postgres" in %s to own the cluster (Debian's postgresql package creates it)`, passwd)
	}
	return uid, gid, true, nil
}

// lookupUser reads name's uid and gid from a passwd file: the root
// filesystem's users are not the host's, so os/user cannot answer.
func lookupUser(passwd, name string) (uid, gid int, found bool, err error) {
	f, err := os.Open(passwd)
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 || fields[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(fields[2])
		gid, err2 := strconv.Atoi(fields[3])
		if err1 != nil || err2 != nil {
			return 0, 0, false, fmt.Errorf("%s: bad entry for %s", passwd, name)
		}
		return uid, gid, true, nil
	}
	return 0, 0, false, sc.Err()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
