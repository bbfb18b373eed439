package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pgjet/pgjet/shared/pgtest"
)

// Cluster is a JetStream cluster of nats-server processes on 127.0.0.1,
// node i running deploy/nats/cluster-{a,b,c}.conf as committed, so that the
// files cannot rot. Only what has to differ on a shared test machine is
// overridden on the command line, which nats-server applies over the file:
// the client port (-p), the cluster listen address (--cluster), the routes
// (--routes), the cluster name (--cluster_name, so that the clusters of two
// parallel tests can never merge through a reused port) and the monitoring
// port (-m -1: any free one). The store directory cannot be overridden that
// way: nats-server refuses -sd next to a store_dir in the file ("Duplicate
// 'store_dir' configuration"), so each node runs a copy of its file in which
// the store_dir line alone is replaced. server_name, sync_interval and the
// rest come from the file.
type Cluster struct {
	t     testing.TB
	Nodes []*NATS
	name  string
}

// ClusterFiles are the repository's node configs, in node order.
var ClusterFiles = []string{"deploy/nats/cluster-a.conf", "deploy/nats/cluster-b.conf", "deploy/nats/cluster-c.conf"}

// StartCluster starts n nodes (1 to 3, one per file of ClusterFiles), each
// with its own store in a temp dir, and waits until the cluster can place a
// stream of n replicas. Nodes are killed when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 || n > len(ClusterFiles) {
		t.Fatalf("StartCluster(%d): deploy/nats has configs for 1 to %d nodes", n, len(ClusterFiles))
	}
	var err error
	// A free port can be taken before the server binds it: try other ones.
	for attempt := 0; attempt < 4; attempt++ {
		var c *Cluster
		if c, err = tryCluster(t, n); err == nil {
			return c
		}
	}
	t.Fatalf("nats-server cluster did not start: %v", err)
	return nil
}

func tryCluster(t testing.TB, n int) (*Cluster, error) {
	t.Helper()
	c := &Cluster{t: t, name: fmt.Sprintf("pgjet-%08x", rand.Uint32())}
	ports := make([]int, 2*n)
	for i := range ports {
		p, err := pgtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[n+i]))
	}
	for i := range n {
		node := &NATS{t: t, dir: t.TempDir(), port: ports[i], cluster: c}
		conf, err := withStoreDir(RepoFile(t, ClusterFiles[i]), node.dir, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		node.conf = conf
		node.args = []string{
			"-c", node.conf,
			"-p", fmt.Sprint(ports[i]),
			"-m", "-1",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", ports[n+i]),
			"--routes", strings.Join(routes, ","),
			"--cluster_name", c.name,
		}
		c.Nodes = append(c.Nodes, node)
	}
	// Start all, then wait for each: a node's JetStream waits for its peers.
	for _, node := range c.Nodes {
		node.proc = StartProcess(t, "nats-server", node.args, nil)
	}
	for _, node := range c.Nodes {
		if err := node.ready(); err != nil {
			c.killAll()
			return nil, err
		}
	}
	if err := c.waitPlacement(n, 90*time.Second); err != nil {
		c.killAll()
		return nil, err
	}
	return c, nil
}

// storeDirLine is the store_dir setting of a node's file.
var storeDirLine = regexp.MustCompile(`(?m)^(\s*store_dir:\s*).*$`)

// withStoreDir writes to dir a copy of the config file conf with its one
// store_dir line set to store, and returns the copy's path.
func withStoreDir(conf, store, dir string) (string, error) {
	b, err := os.ReadFile(conf)
	if err != nil {
		return "", err
	}
	if n := len(storeDirLine.FindAll(b, -1)); n != 1 {
		return "", fmt.Errorf("%s: %d store_dir lines, want 1", conf, n)
	}
	b = storeDirLine.ReplaceAll(b, []byte(fmt.Sprintf("${1}%q", store)))
	out := filepath.Join(dir, filepath.Base(conf))
	return out, os.WriteFile(out, b, 0o644)
}

func (c *Cluster) killAll() {
	for _, node := range c.Nodes {
		if node.proc != nil {
			node.proc.Kill()
		}
	}
}

// startNode starts a cluster node again with its arguments (Restart).
func (n *NATS) startNode() error {
	n.proc = StartProcess(n.t, "nats-server", n.args, nil)
	return n.ready()
}

// ready waits until the node accepts clients and learns its server name.
func (n *NATS) ready() error {
	if !n.proc.WaitForLog("Server is ready", 60*time.Second) {
		n.proc.Kill()
		return fmt.Errorf("node on port %d not ready:\n%s", n.port, lastLines(n.proc.Log(), 20))
	}
	nc, err := nats.Connect(n.URL(), nats.Timeout(10*time.Second))
	if err != nil {
		return fmt.Errorf("node on port %d: %w", n.port, err)
	}
	defer nc.Close()
	n.name = nc.ConnectedServerName()
	return nil
}

// waitPlacement waits until a stream of replicas replicas can be created,
// that is, until the meta leader is elected and knows enough peers.
func (c *Cluster) waitPlacement(replicas int, timeout time.Duration) error {
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	probe := fmt.Sprintf("HARNESS_PROBE_%08x", rand.Uint32())
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: probe, Subjects: []string{"harness.probe." + probe}, Storage: jetstream.MemoryStorage, Replicas: replicas,
		})
		if err == nil {
			err = js.DeleteStream(ctx, probe)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster cannot place a stream of %d replicas after %s: %w", replicas, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// URLs is every node's client URL, comma-separated: what the collector's
// and router's --nats take.
func (c *Cluster) URLs() string {
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.URL())
	}
	return strings.Join(urls, ",")
}

// Name is the server_name of the node, from its config file (the server
// reports it; "" before the first start).
func (n *NATS) Name() string { return n.name }

// Config is the name of the repository file a cluster node runs ("" for
// StartNATS's servers).
func (n *NATS) Config() string {
	if n.cluster == nil {
		return ""
	}
	return filepath.Base(n.conf)
}

// MonitorURL is the node's monitoring endpoint (http://127.0.0.1:PORT), as
// the running server logged it; "" when it has none.
func (n *NATS) MonitorURL() string {
	m := monitorLine.FindStringSubmatch(n.proc.Log())
	if m == nil {
		return ""
	}
	return "http://" + m[1]
}

var monitorLine = regexp.MustCompile(`Starting http monitor on (\S+)`)

// Node returns the node with this server name, nil if none.
func (c *Cluster) Node(name string) *NATS {
	for _, n := range c.Nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// ErrNoLeader is returned by StreamLeader while a stream has no leader, e.g.
// while a majority of its replicas is down.
var ErrNoLeader = errors.New("stream has no leader")

// StreamLeader returns the node leading stream, as the stream's info
// reports it (Cluster.Leader), through js, a connection to the cluster.
func (c *Cluster) StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (*NATS, error) {
	info, err := c.StreamInfo(ctx, js, stream)
	if err != nil {
		return nil, err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return nil, ErrNoLeader
	}
	n := c.Node(info.Cluster.Leader)
	if n == nil {
		return nil, fmt.Errorf("stream %s: leader %q is not a node of this cluster", stream, info.Cluster.Leader)
	}
	return n, nil
}

// StreamInfo reads the stream's info, with its cluster part (leader,
// replicas and whether each is current).
func (c *Cluster) StreamInfo(ctx context.Context, js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// WaitStreamLeader waits until stream has a leader other than not (nil:
// any leader) and returns it, failing the test after timeout.
func (c *Cluster) WaitStreamLeader(js jetstream.JetStream, stream string, not *NATS, timeout time.Duration) *NATS {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := c.StreamLeader(ctx, js, stream)
		cancel()
		if err == nil && n != not {
			return n
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("leader is still %s", n.name)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: no new leader within %s: %v", stream, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MoveStreamLeader asks stream's leader to step down in favour of node to
// (a leader stepdown with a preferred placement) and waits until to leads,
// failing the test after timeout. It is a graceful leader change.
func (c *Cluster) MoveStreamLeader(nc *nats.Conn, js jetstream.JetStream, stream string, to *NATS, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, to.name)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		leader, err := c.StreamLeader(ctx, js, stream)
		cancel()
		if err == nil && leader == to {
			return
		}
		if err == nil {
			var resp struct {
				Error *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			msg, rerr := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, req, 5*time.Second)
			switch {
			case rerr != nil:
				err = rerr
			case json.Unmarshal(msg.Data, &resp) != nil:
				err = fmt.Errorf("stepdown answer %q", msg.Data)
			case resp.Error != nil:
				err = errors.New(resp.Error.Description)
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: leadership not moved to %s within %s: %v", stream, to.name, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// WaitStreamCurrent waits until stream has a leader and every other replica
// is current (caught up), failing the test after timeout.
func (c *Cluster) WaitStreamCurrent(js jetstream.JetStream, stream string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := c.StreamInfo(ctx, js, stream)
		cancel()
		why = streamBehind(info, err, len(c.Nodes))
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: replicas not current within %s: %s", stream, timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitHealthy waits until every node answers its /healthz with ok: JetStream
// up, in contact with the meta leader, and its streams and consumers
// current. It fails the test after timeout.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		why := ""
		for _, n := range c.Nodes {
			if why = n.unhealthy(client); why != "" {
				break
			}
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("cluster not healthy within %s: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unhealthy says why the node's /healthz is not ok, "" when it is.
func (n *NATS) unhealthy(client *http.Client) string {
	if n.proc.Exited() {
		return n.name + " is not running"
	}
	url := n.MonitorURL()
	if url == "" {
		return n.name + " has no monitoring port yet"
	}
	resp, err := client.Get(url + "/healthz")
	if err != nil {
		return fmt.Sprintf("%s: %v", n.name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%s: /healthz %d %s", n.name, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return ""
}

func streamBehind(info *jetstream.StreamInfo, err error, nodes int) string {
	switch {
	case err != nil:
		return err.Error()
	case info.Cluster == nil || info.Cluster.Leader == "":
		return "no leader"
	case len(info.Cluster.Replicas) < min(info.Config.Replicas, nodes)-1:
		return fmt.Sprintf("%d replicas besides the leader", len(info.Cluster.Replicas))
	}
	for _, p := range info.Cluster.Replicas {
		if !p.Current || p.Offline {
			return fmt.Sprintf("replica %s not current (offline %v, lag %d, active %s ago)", p.Name, p.Offline, p.Lag, p.Active)
		}
	}
	return ""
}
