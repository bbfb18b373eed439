package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CopyAsStandby makes a standby of c from a copy of its data directory,
// taken while c is stopped (call StopMode first): unlike pg_basebackup,
// the copy keeps c's replication slots, logical ones included, at the
// positions they had. The standby streams from c (primary_conninfo), with
// slot primarySlot when not empty (a physical slot on c), and conf
// lines; it is not started: call Restart. Stop removes it.
func (c *Cluster) CopyAsStandby(primarySlot string, conf ...string) (*Cluster, error) {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		return nil, errors.New("copy a stopped cluster: postmaster.pid exists")
	}
	dir, err := c.in.mkTemp()
	if err != nil {
		return nil, err
	}
	s := &Cluster{Dir: dir, in: c.in}
	fail := func(err error) (*Cluster, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := copyTree(c.dataDir(), s.dataDir()); err != nil {
		return fail(fmt.Errorf("copy data directory: %w", err))
	}
	if s.Port, err = FreePort(); err != nil {
		return fail(err)
	}
	lines := []string{
		fmt.Sprintf("port = %d", s.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", c.in.inner(dir)),
		fmt.Sprintf("primary_conninfo = 'host=127.0.0.1 port=%d user=postgres dbname=postgres application_name=standby'", c.Port),
		"hot_standby = on",
		"hot_standby_feedback = on",
	}
	if primarySlot != "" {
		lines = append(lines, fmt.Sprintf("primary_slot_name = '%s'", primarySlot))
	}
	lines = append(lines, conf...)
	// Later lines of postgresql.auto.conf win over the primary's.
	auto := filepath.Join(s.dataDir(), "postgresql.auto.conf")
	f, err := os.OpenFile(auto, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fail(err)
	}
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(s.dataDir(), "standby.signal"), nil, 0o600); err != nil {
		return fail(err)
	}
	if err := s.chownToOwner(); err != nil {
		return fail(err)
	}
	return s, nil
}

// RunStandbyCopy is CopyAsStandby for a test: it fails the test on an
// error and stops the standby when the test ends.
func (c *Cluster) RunStandbyCopy(t testing.TB, primarySlot string, conf ...string) *Cluster {
	t.Helper()
	s, err := c.CopyAsStandby(primarySlot, conf...)
	if err != nil {
		t.Fatalf("standby of %s: %v", c.Dir, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// copyTree copies a directory tree, keeping file modes (Postgres refuses a
// data directory that others can read).
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(to, fi.Mode().Perm())
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, fi.Mode().Perm())
		}
		return nil // sockets and the like: not data
	})
}
