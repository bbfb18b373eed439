// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb into a
// temp dir, wal_level=logical, a free port on 127.0.0.1, unix socket in the
// temp dir. Missing server binaries fail the test (never skip): CI must run it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	Dir  string
	Port int
	bin  string
}

// BinDir finds the server binaries: $PG_BIN, `pg_config --bindir`, or the
// newest /usr/lib/postgresql/*/bin (Debian layout).
func BinDir() (string, error) {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d, nil
	}
	var cands []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		cands = append(cands, strings.TrimSpace(string(out)))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(debian, func(i, j int) bool { return pgMajor(debian[i]) > pgMajor(debian[j]) })
	cands = append(cands, debian...)
	for _, d := range cands {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries not found (initdb): install Debian's postgresql package (apt-get install -y postgresql) or set PG_BIN")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start creates and starts a cluster. extraConf lines are appended to
// postgresql.conf. Call Stop to remove it.
func Start(extraConf ...string) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgjet-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if err := c.chownToOwner(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if out, err := c.run("initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if c.Port, err = FreePort(); err != nil {
			return nil, err
		}
		conf := []string{
			"listen_addresses = '127.0.0.1'",
			fmt.Sprintf("port = %d", c.Port),
			fmt.Sprintf("unix_socket_directories = '%s'", dir),
			"wal_level = logical",
			"max_replication_slots = 20",
			"max_wal_senders = 20",
			"fsync = off", // throwaway data; WAL semantics are unchanged
			"shared_buffers = 128MB",
			"max_wal_size = 2GB",
			"wal_sender_timeout = 60s",
		}
		conf = append(conf, extraConf...)
		if err := os.WriteFile(filepath.Join(c.dataDir(), "postgresql.auto.conf"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := c.chownToOwner(); err != nil {
			return nil, err
		}
		if err = c.Restart(); err == nil {
			return c, nil
		}
		if attempt == 3 { // port taken between FreePort and bind: try another
			c.Stop()
			return nil, err
		}
	}
}

// Run starts a cluster for a test and stops it when the test ends.
func Run(t testing.TB, extraConf ...string) *Cluster {
	t.Helper()
	c, err := Start(extraConf...)
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }

// DSN is a connection string for database db (default "postgres").
func (c *Cluster) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Restart starts the cluster (again) and waits until it accepts connections.
func (c *Cluster) Restart() error {
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(c.Dir, "postgres.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, tail(string(log), 2000))
	}
	return nil
}

// StopMode stops the server with pg_ctl -m mode (smart, fast, immediate).
func (c *Cluster) StopMode(mode string) error {
	if out, err := c.run("pg_ctl", "-D", c.dataDir(), "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Stop stops the server and removes its files.
func (c *Cluster) Stop() {
	_ = c.StopMode("immediate")
	os.RemoveAll(c.Dir)
}

// Exec runs SQL statements on database "postgres".
func (c *Cluster) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.DSN(""))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// Log returns the server log.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
	return string(b)
}

// osOwner is the OS user that runs the server: initdb and postgres refuse to
// run as root, so as root we use the "postgres" user.
func osOwner() (*user.User, bool) {
	if os.Geteuid() != 0 {
		return nil, false
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, true
	}
	return u, true
}

func (c *Cluster) chownToOwner() error {
	u, root := osOwner()
	if !root {
		return nil
	}
	if u == nil {
		return errors.New(`running as root needs an OS user "postgres" to own the cluster (Debian's postgresql package creates it)`)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(c.Dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func (c *Cluster) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if _, root := osOwner(); root {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
