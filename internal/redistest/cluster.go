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

// Cluster is a Redis Cluster, each node a Server the test owns.
type Cluster struct {
	nodes    []*Server // the masters, in slot order
	replicas []*Server // replicas[i*perMaster+j] is the j-th replica of nodes[i]
}

// ClusterOptions shape a cluster that StartClusterWith makes.
type ClusterOptions struct {
	// Masters is how many masters share the slots; at least 1.
	Masters int
	// ReplicasPerMaster is how many replicas each master has. Default 0.
	ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout: how long a node may not answer
	// before it is deemed failing, and a replica may take over. Default 2s.
	NodeTimeout time.Duration
	// Args are given to every node after the cluster's own, e.g.
	// "--cluster-require-full-coverage", "no".
	Args []string
	// TLS, when set, makes every node speak only TLS with its
	// certificates, on its port and its cluster bus ("--tls-cluster yes",
	// "--tls-replication yes"), as StartTLS does.
	TLS *TLSFiles
}

// StartCluster is StartClusterWith for masters without replicas.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Masters: masters})
}

// StartClusterWith starts the masters and replicas of o as redis-server
// processes in cluster mode ("--cluster-enabled yes --cluster-config-file
// nodes.conf --cluster-node-timeout <ms>"; replicas also
// "--cluster-replica-validity-factor 0", so that one may always take
// over), each in its own temp directory on a free port whose cluster bus
// port (port+10000) is free too. It gives each master an equal share of the
// 16384 hash slots, joins the nodes with CLUSTER MEET, makes each replica
// replicate its master (CLUSTER REPLICATE), and returns once CLUSTER INFO on
// every node says cluster_state:ok and every replica is in sync. It needs
// only redis-server, not redis-cli. When the test ends every node is killed.
// It fails the test if o.Masters < 1, if a node does not start, or if the
// cluster is not ok within 20 seconds.
func StartClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Masters < 1 {
		t.Fatalf("redistest: StartClusterWith(t, %+v): need at least one master", o)
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 2 * time.Second
	}
	args := append([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
		"--cluster-replica-validity-factor", "0",
	}, o.Args...)
	node := func() *Server { return start(t, freeClusterPort, args) }
	if o.TLS != nil {
		args = append(tlsArgs(o.TLS), append([]string{"--tls-cluster", "yes", "--tls-replication", "yes"}, args...)...)
		node = func() *Server { return startServer(t, &Server{tls: o.TLS.Client, args: args}, freeClusterPort) }
	}
	c := &Cluster{nodes: make([]*Server, o.Masters), replicas: make([]*Server, o.Masters*o.ReplicasPerMaster)}
	for i := range c.nodes {
		c.nodes[i] = node()
	}
	for i := range c.replicas {
		c.replicas[i] = node()
	}
	if err := c.form(); err != nil {
		t.Fatalf("redistest: forming a cluster of %v: %v", c.Addrs(), err)
	}
	if err := c.waitOK(clusterOKTimeout); err != nil {
		t.Fatalf("redistest: cluster %v: %v", c.Addrs(), err)
	}
	if len(c.replicas) > 0 {
		if err := c.replicate(o.ReplicasPerMaster, clusterOKTimeout); err != nil {
			t.Fatalf("redistest: cluster %v: replicas: %v", c.Addrs(), err)
		}
	}
	return c
}

// Replicas are the replicas of master i (its index in Nodes), for tests
// that wait for one to take over.
func (c *Cluster) Replicas(i int) []*Server {
	per := len(c.replicas) / len(c.nodes)
	return append([]*Server(nil), c.replicas[i*per:(i+1)*per]...)
}

// replicate meets every replica and makes it replicate its master, then
// waits until each is in sync and every node knows every replica.
func (c *Cluster) replicate(perMaster int, timeout time.Duration) error {
	for _, r := range c.replicas {
		if err := clusterCommand(c.nodes[0], "MEET", "127.0.0.1", strconv.Itoa(r.port)); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(timeout)
	for i, r := range c.replicas {
		master := c.nodes[i/perMaster]
		id, err := master.Do(clusterCmdTimeout, "CLUSTER", "MYID")
		if err != nil {
			return err
		}
		for { // until the replica has heard of its master through gossip
			err := clusterCommand(r, "REPLICATE", id)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: CLUSTER REPLICATE %s: %w", r.Addr(), master.Addr(), err)
			}
			time.Sleep(pollInterval)
		}
	}
	for _, r := range c.replicas {
		if err := waitInfo(r, "replication", time.Until(deadline), "master_link_status:up"); err != nil {
			return fmt.Errorf("%s: %w", r.Addr(), err)
		}
	}
	for _, n := range append(c.Nodes(), c.replicas...) {
		for {
			nodes, err := n.Do(clusterCmdTimeout, "CLUSTER", "NODES")
			if err == nil && strings.Count(nodes, " slave ")+strings.Count(nodes, ",slave ") == len(c.replicas) {
				break
			}
			if err == nil {
				err = errors.New("not every replica is known yet:\n" + nodes)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %w", n.Addr(), err)
			}
			time.Sleep(pollInterval)
		}
	}
	return nil
}

// WaitPromoted polls the replicas of master i until one says it is a
// master, and returns it. It fails the test after timeout.
func (c *Cluster) WaitPromoted(t testing.TB, i int, timeout time.Duration) *Server {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range c.Replicas(i) {
			if info, err := r.Do(probeTimeout, "INFO", "replication"); err == nil && strings.Contains(info, "role:master\r\n") {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no replica of %s took over within %v", c.nodes[i].Addr(), timeout)
		}
		time.Sleep(pollInterval)
	}
}

// Addrs are the masters' addresses ("127.0.0.1:<port>"), in the order of
// Nodes: node i serves the i-th share of the hash slots.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes are the cluster's masters as it started, for tests that stop, restart or pause one.
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
			info, err := n.Do(clusterCmdTimeout, "CLUSTER", "INFO")
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
	reply, err := n.Do(clusterCmdTimeout, append([]string{"CLUSTER"}, args...)...)
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
