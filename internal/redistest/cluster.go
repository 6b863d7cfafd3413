package redistest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis Cluster constants.
const (
	clusterSlots      = 16384 // hash slots a cluster divides among its masters
	clusterBusOffset  = 10000 // a node's cluster bus listens on its port plus this
	maxClusterPort    = 65535 - clusterBusOffset
	clusterOKTimeout  = 20 * time.Second // from CLUSTER MEET until every node is ok
	clusterCmdTimeout = 2 * time.Second  // one command while forming the cluster
	portAttempts      = 100              // tries at a port whose bus port is free too
)

// Cluster is a Redis Cluster of masters without replicas, each a Server the
// test owns.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts masters redis-server processes in cluster mode
// ("--cluster-enabled yes --cluster-config-file nodes.conf
// --cluster-node-timeout 2000"), each in its own temp directory on a free port
// whose cluster bus port (port+10000) is free too. It gives each master an
// equal share of the 16384 hash slots, joins them with CLUSTER MEET, and
// returns once CLUSTER INFO on every node says cluster_state:ok. It needs only
// redis-server, not redis-cli. When the test ends every node is killed.
// StartCluster fails the test if masters < 1, if a node does not start, or if
// the cluster is not ok within 20 seconds.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest: StartCluster(t, %d): need at least one master", masters)
	}
	c := &Cluster{nodes: make([]*Server, masters)}
	for i := range c.nodes {
		c.nodes[i] = start(t, freeClusterPort, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
		})
	}
	if err := c.form(); err != nil {
		t.Fatalf("redistest: forming a cluster of %v: %v", c.Addrs(), err)
	}
	if err := c.waitOK(clusterOKTimeout); err != nil {
		t.Fatalf("redistest: cluster %v: %v", c.Addrs(), err)
	}
	return c
}

// Addrs are the nodes' addresses ("127.0.0.1:<port>"), in the order of
// Nodes: node i serves the i-th share of the hash slots.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes are the cluster's servers, for tests that stop, restart or pause one.
// The returned slice is a copy.
func (c *Cluster) Nodes() []*Server {
	return append([]*Server(nil), c.nodes...)
}

// form does what redis-cli --cluster create does for masters only: a distinct
// config epoch per node (so that they need not resolve a collision), slots to
// each node, and a CLUSTER MEET from the first node to every other. It uses
// CLUSTER ADDSLOTS rather than ADDSLOTSRANGE, which needs Redis 7.
func (c *Cluster) form() error {
	for i, n := range c.nodes {
		if err := clusterCommand(n, "SET-CONFIG-EPOCH", strconv.Itoa(i+1)); err != nil {
			return err
		}
		first, end := i*clusterSlots/len(c.nodes), (i+1)*clusterSlots/len(c.nodes)
		if err := clusterCommand(n, append([]string{"ADDSLOTS"}, slotRange(first, end)...)...); err != nil {
			return err
		}
	}
	for _, n := range c.nodes[1:] {
		if err := clusterCommand(c.nodes[0], "MEET", "127.0.0.1", strconv.Itoa(n.port)); err != nil {
			return err
		}
	}
	return nil
}

// waitOK polls until CLUSTER INFO on every node says cluster_state:ok.
func (c *Cluster) waitOK(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range c.nodes {
		for {
			info, err := Do(n.Addr(), clusterCmdTimeout, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok\r\n") {
				break
			}
			if err == nil {
				err = errors.New("cluster_state is not ok:\n" + info)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not ok after %v: %w", n.Addr(), timeout, err)
			}
			time.Sleep(pollInterval)
		}
	}
	return nil
}

// clusterCommand sends CLUSTER args to n and expects OK.
func clusterCommand(n *Server, args ...string) error {
	reply, err := Do(n.Addr(), clusterCmdTimeout, append([]string{"CLUSTER"}, args...)...)
	if err != nil {
		return err
	}
	if reply != "OK" {
		return fmt.Errorf("%s: CLUSTER %s answered %q, want OK", n.Addr(), args[0], reply)
	}
	return nil
}

// slotRange is the slots first to end-1 as decimal text.
func slotRange(first, end int) []string {
	slots := make([]string, 0, end-first)
	for slot := first; slot < end; slot++ {
		slots = append(slots, strconv.Itoa(slot))
	}
	return slots
}

// freeClusterPort returns a loopback port that was free a moment ago and
// whose cluster bus port was free too.
func freeClusterPort() (int, error) {
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			return 0, err
		}
		if port > maxClusterPort {
			continue
		}
		if busFree(port + clusterBusOffset) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port p <= %d with p+%d free in %d tries", maxClusterPort, clusterBusOffset, portAttempts)
}

// busFree reports whether port can be listened on now.
func busFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
