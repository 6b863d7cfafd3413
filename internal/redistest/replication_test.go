package redistest_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/meshkit/meshkit/internal/redistest"
)

func TestStartTLSSpeaksOnlyTLS(t *testing.T) {
	t.Parallel()
	files := redistest.NewTLSFiles(t, "redistest CA")
	srv := redistest.StartTLS(t, files)
	if reply, err := srv.Do(pingTimeout, "PING"); err != nil || reply != "PONG" {
		t.Fatalf("PING over TLS: %q, %v", reply, err)
	}
	if err := redistest.Ping(srv.Addr(), pingTimeout); err == nil {
		t.Fatal("PING in plain text answered: the port is not TLS-only")
	}
	other := redistest.NewTLSFiles(t, "another CA")
	if _, err := redistest.DoTLS(srv.Addr(), other.Client, pingTimeout, "PING"); err == nil {
		t.Fatal("a client that trusts another CA got an answer")
	}
	noCert := &tls.Config{RootCAs: files.CA.Pool(), MinVersion: tls.VersionTLS12}
	if _, err := redistest.DoTLS(srv.Addr(), noCert, pingTimeout, "PING"); err == nil {
		t.Fatal("a client without a certificate got an answer from --tls-auth-clients yes")
	}
}

func TestStartSentinelsPromotesTheReplica(t *testing.T) {
	t.Parallel()
	g := redistest.StartSentinels(t, redistest.SentinelOptions{})
	if got := g.MasterAddr(); got != g.Primary.Addr() {
		t.Fatalf("the sentinels name %q as master, want the primary %s", got, g.Primary.Addr())
	}
	g.Primary.Stop()
	if got := g.WaitPromoted(t, g.Primary.Addr(), 30*time.Second); got != g.Replicas[0].Addr() {
		t.Fatalf("promoted %s, want the replica %s", got, g.Replicas[0].Addr())
	}
}

func TestStartClusterWithReplicasFailsOver(t *testing.T) {
	t.Parallel()
	c := redistest.StartClusterWith(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, NodeTimeout: time.Second})
	for i, n := range c.Nodes() {
		replicas := c.Replicas(i)
		if len(replicas) != 1 {
			t.Fatalf("master %d has %d replicas, want 1", i, len(replicas))
		}
		info, err := replicas[0].Do(pingTimeout, "INFO", "replication")
		if err != nil || !strings.Contains(info, "master_port:"+n.Addr()[strings.LastIndexByte(n.Addr(), ':')+1:]) {
			t.Fatalf("replica %s of %s: %v\n%s", replicas[0].Addr(), n.Addr(), err, info)
		}
	}
	c.Nodes()[1].Stop()
	promoted := c.WaitPromoted(t, 1, 30*time.Second)
	if promoted != c.Replicas(1)[0] {
		t.Fatalf("promoted %s", promoted.Addr())
	}
}
