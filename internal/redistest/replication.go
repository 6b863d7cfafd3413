package redistest

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bounds on waiting for replication and sentinels to settle.
const (
	replicaSyncTimeout = 20 * time.Second // a replica's first sync
	sentinelTimeout    = 30 * time.Second // sentinels finding each other and the replicas
)

// StartReplica starts a redis-server replicating primary ("--replicaof"),
// with args after, and returns once its link to the primary is up.
func StartReplica(t testing.TB, primary *Server, args ...string) *Server {
	t.Helper()
	return startReplica(t, primary, args)
}

// startReplica is StartReplica; a replica of a TLS server speaks TLS with
// its client configuration (args then give the certificates).
func startReplica(t testing.TB, primary *Server, args []string) *Server {
	t.Helper()
	r := startServer(t, &Server{tls: primary.tls, args: append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.port)}, args...)}, freePort)
	if err := waitInfo(r, "replication", replicaSyncTimeout, "master_link_status:up"); err != nil {
		t.Fatalf("redistest: replica %s of %s: %v\n%s", r.Addr(), primary.Addr(), err, r.tail())
	}
	return r
}

// SentinelOptions shape a group that StartSentinels makes.
type SentinelOptions struct {
	// Master is the name the sentinels know the primary by. Default
	// "mymaster".
	Master string
	// Replicas is how many replicas the primary has. Default 1.
	Replicas int
	// Sentinels is how many sentinels watch it; a majority is the quorum.
	// Default 3.
	Sentinels int
	// DownAfter is how long the primary must not answer before a sentinel
	// deems it down (down-after-milliseconds). Default 1s.
	DownAfter time.Duration
	// TLS, when set, makes every server and sentinel speak only TLS with
	// its certificates, replication included, as StartTLS does.
	TLS *TLSFiles
}

// Sentinels is a primary, its replicas and the sentinels watching them,
// each a Server the test owns.
type Sentinels struct {
	Master    string
	Primary   *Server
	Replicas  []*Server
	Sentinels []*Server
}

// StartSentinels starts a primary, its replicas and its sentinels
// ("redis-server <conf> --sentinel"), and returns once every sentinel knows
// every replica and every other sentinel, so that a failover can be
// authorized. It fails the test if that takes more than 30 seconds.
func StartSentinels(t testing.TB, o SentinelOptions) *Sentinels {
	t.Helper()
	if o.Master == "" {
		o.Master = "mymaster"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Sentinels <= 0 {
		o.Sentinels = 3
	}
	if o.DownAfter <= 0 {
		o.DownAfter = time.Second
	}
	var withTLS []string // the arguments of every server and sentinel
	var client *tls.Config
	if o.TLS != nil {
		withTLS, client = append(tlsArgs(o.TLS), "--tls-replication", "yes"), o.TLS.Client
	}
	g := &Sentinels{Master: o.Master, Primary: startServer(t, &Server{tls: client, args: withTLS}, freePort)}
	for range o.Replicas {
		g.Replicas = append(g.Replicas, startReplica(t, g.Primary, withTLS))
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		o.Master, g.Primary.port, o.Sentinels/2+1, o.DownAfter.Milliseconds(), 10*o.DownAfter.Milliseconds())
	for range o.Sentinels {
		g.Sentinels = append(g.Sentinels, startServer(t, &Server{conf: conf, tls: client, args: append(withTLS, "--sentinel")}, freePort))
	}
	want := fmt.Sprintf("slaves=%d,sentinels=%d", o.Replicas, o.Sentinels)
	for _, s := range g.Sentinels {
		if err := waitInfo(s, "sentinel", sentinelTimeout, want); err != nil {
			t.Fatalf("redistest: sentinel %s: %v\n%s", s.Addr(), err, s.tail())
		}
	}
	return g
}

// Addrs are the sentinels' addresses.
func (g *Sentinels) Addrs() []string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// MasterAddr is the master's address as the first sentinel that answers
// says, "" if none answers.
func (g *Sentinels) MasterAddr() string {
	for _, s := range g.Sentinels {
		info, err := s.Do(probeTimeout, "INFO", "sentinel")
		if err != nil {
			continue
		}
		if _, rest, ok := strings.Cut(info, "name="+g.Master+",status="); ok {
			if _, rest, ok = strings.Cut(rest, "address="); ok {
				addr, _, _ := strings.Cut(rest, ",")
				return addr
			}
		}
	}
	return ""
}

// WaitPromoted polls the sentinels until they name a master other than
// old, and returns its address. It fails the test after timeout.
func (g *Sentinels) WaitPromoted(t testing.TB, old string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if addr := g.MasterAddr(); addr != "" && addr != old {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: the sentinels still name %s as master %q after %v\n%s", old, g.Master, timeout, g.Sentinels[0].tail())
		}
		time.Sleep(pollInterval)
	}
}

// waitInfo polls INFO section on s until it contains every one of want.
func waitInfo(s *Server, section string, timeout time.Duration, want ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		info, err := s.Do(probeTimeout, "INFO", section)
		missing := ""
		if err == nil {
			for _, w := range want {
				if !strings.Contains(info, w) {
					missing = w
					break
				}
			}
			if missing == "" {
				return nil
			}
			err = fmt.Errorf("INFO %s has no %q:\n%s", section, missing, info)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}
