// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb into a
// temp dir, wal_level=logical, a free port on 127.0.0.1, unix socket in the
// temp dir. Missing server binaries fail the test (never skip): CI must run it.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running throwaway PostgreSQL cluster.
type Cluster struct {
	// Dir is the cluster's directory on the host (data, log, socket).
	Dir  string
	Port int
	in   install
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
	in, err := findInstall()
	if err != nil {
		return nil, err
	}
	dir, err := in.mkTemp()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, in: in}
	if err := c.chownToOwner(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if out, err := c.Tool("initdb", "-D", c.in.inner(c.dataDir()), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	if err := c.configure(extraConf); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// configure writes the settings every test cluster has, with extraConf,
// and starts the server on a free port.
func (c *Cluster) configure(extraConf []string) error {
	initial, err := os.ReadFile(filepath.Join(c.dataDir(), "postgresql.auto.conf"))
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if c.Port, err = FreePort(); err != nil {
			return err
		}
		conf := []string{
			"listen_addresses = '127.0.0.1'",
			fmt.Sprintf("port = %d", c.Port),
			fmt.Sprintf("unix_socket_directories = '%s'", c.in.inner(c.Dir)),
			"wal_level = logical",
			"max_replication_slots = 20",
			"max_wal_senders = 20",
			"fsync = off", // throwaway data; WAL semantics are unchanged
			"shared_buffers = 128MB",
			"max_wal_size = 2GB",
			"wal_sender_timeout = 60s",
		}
		conf = append(conf, extraConf...)
		// Appended: pg_basebackup -R writes primary_conninfo there.
		auto := filepath.Join(c.dataDir(), "postgresql.auto.conf")
		if err := os.WriteFile(auto, append(append([]byte(nil), initial...), strings.Join(conf, "\n")+"\n"...), 0o600); err != nil {
			return err
		}
		if err := c.chownToOwner(); err != nil {
			return err
		}
		if err = c.Restart(); err == nil {
			return nil
		}
		if attempt == 3 { // port taken between FreePort and bind: try another
			return err
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
	if out, err := c.Tool("pg_ctl", "-D", c.in.inner(c.dataDir()), "-l", c.in.inner(filepath.Join(c.Dir, "postgres.log")), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, tail(string(log), 2000))
	}
	return nil
}

// StopMode stops the server with pg_ctl -m mode (smart, fast, immediate).
func (c *Cluster) StopMode(mode string) error {
	if out, err := c.Tool("pg_ctl", "-D", c.in.inner(c.dataDir()), "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Stop stops the server and removes its files.
func (c *Cluster) Stop() {
	_ = c.StopMode("immediate")
	os.RemoveAll(c.Dir)
}

// Connect opens a connection to database "postgres", closed when t ends.
func (c *Cluster) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Execer returns a function that runs SQL on conn and ends the test on an
// error, naming the SQL.
func Execer(t testing.TB, conn *pgx.Conn) func(sql string) {
	return func(sql string) {
		t.Helper()
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
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

func (c *Cluster) chownToOwner() error {
	uid, gid, ok, err := c.in.owner()
	if !ok || err != nil {
		return err
	}
	return filepath.Walk(c.Dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// Tool runs one of the server's programs (pg_ctl, pg_basebackup, psql, ...)
// as the server's OS user, where the server runs (inside its root
// filesystem when it has one); paths in args are as InnerPath gives them.
func (c *Cluster) Tool(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.in.command(ctx, name, args...)
	cmd.Dir = c.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// InnerPath is host path p (under Dir) as the server and Tool see it.
func (c *Cluster) InnerPath(p string) string { return c.in.inner(p) }

// DataDir is the data directory on the host.
func (c *Cluster) DataDir() string { return c.dataDir() }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Major is the server's major version, as it reports it: what differs
// between versions is detected from this, not assumed from the variable
// that picked them.
func (c *Cluster) Major(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, c.DSN(""))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return 0, err
	}
	return num / 10000, nil
}

// StartStandby makes a physical standby of c (pg_basebackup streaming, with
// a physical slot named slot created on c, primary_conninfo naming database
// postgres so that PG17+ can synchronize failover slots) and starts it with
// extraConf. Stop it as any cluster.
func (c *Cluster) StartStandby(slot string, extraConf ...string) (*Cluster, error) {
	dir, err := c.in.mkTemp()
	if err != nil {
		return nil, err
	}
	s := &Cluster{Dir: dir, in: c.in}
	if err := s.chownToOwner(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	src := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", c.Port)
	if out, err := s.Tool("pg_basebackup", "-d", src, "-D", s.in.inner(s.dataDir()), "-X", "stream", "-R", "-C", "-S", slot, "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_basebackup: %w: %s", err, out)
	}
	if err := s.configure(extraConf); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Promote promotes a standby and waits until it accepts writes.
func (c *Cluster) Promote() error {
	if out, err := c.Tool("pg_ctl", "-D", c.in.inner(c.dataDir()), "-w", "-t", "60", "promote"); err != nil {
		return fmt.Errorf("pg_ctl promote: %w: %s", err, out)
	}
	return nil
}

// Kill9 kills the postmaster with SIGKILL: a crash, not a shutdown (its
// backends notice and exit; a restart runs crash recovery).
func (c *Cluster) Kill9() error {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		return fmt.Errorf("postmaster.pid: %w", err)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
