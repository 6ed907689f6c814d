package launcher

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/gorun-hpc/gorun/internal/bus"
)

// jobCluster is how the servers of one job form a NATS cluster: gorun's
// own server is the seed every host's server dials; the servers then find
// each other through it (NATS's route gossip) and connect in a full mesh,
// so that a message between two hosts goes straight between them. Every
// route is TLS with a certificate of the job's CA (see bus.ClusterSpec).
type jobCluster struct {
	ca      *bus.CA
	jobID   string
	size    int
	users   []string // the ranks' nkeys (public): every server admits them
	seed    string   // host:port of gorun's route listener, as the hosts reach it
	ports   [2]int
	verbose bool
}

// clusterFor readies the cluster of a job that has ranks on other hosts
// (hosts: the remote ones of the plan), and returns the spec of gorun's
// own server in it. advertise ("" for the address of the interface that
// routes to the first remote host) is how the hosts reach gorun.
func clusterFor(ctx context.Context, cfg *Config, jobID string, users []string, hosts []Host) (*jobCluster, *bus.Spec, error) {
	ca, err := bus.NewCA(jobID)
	if err != nil {
		return nil, nil, fmt.Errorf("job certificates: %w", err)
	}
	adv := cfg.SSH.Advertise
	if adv == "" {
		adv = routeAddr(ctx, &cfg.SSH, hosts[0])
	}
	cert, key, err := ca.Issue(adv)
	if err != nil {
		return nil, nil, fmt.Errorf("job certificates: %w", err)
	}
	c := &jobCluster{ca: ca, jobID: jobID, size: len(users), users: users, ports: cfg.RoutePorts, verbose: cfg.Verbose}
	spec := &bus.Spec{
		Name: "gorun-0", Host: cfg.NATSHost, JobID: jobID, Size: len(users), Users: users, Verbose: cfg.Verbose,
		Cluster: &bus.ClusterSpec{Ports: cfg.RoutePorts, Advertise: adv, CA: ca.CertPEM, Cert: cert, Key: key},
	}
	return c, spec, nil
}

// setSeed records where gorun's server listens for routes.
func (c *jobCluster) setSeed(adv string, port int) {
	c.seed = net.JoinHostPort(adv, strconv.Itoa(port))
}

// specFor is the spec of host idx's server: listening for ranks on
// loopback only, for routes on a port of the range, advertised at the
// address ssh reached the host at, with a key and certificate of its own.
func (c *jobCluster) specFor(idx int, h Host, hello agentHello) (*bus.Spec, error) {
	adv := hello.Addr
	if adv == "" {
		adv = h.Name
	}
	cert, key, err := c.ca.Issue(adv, h.Name, hello.Hostname)
	if err != nil {
		return nil, fmt.Errorf("job certificates: %w", err)
	}
	return &bus.Spec{
		Name: "gorun-" + strconv.Itoa(idx+1), Host: "127.0.0.1", JobID: c.jobID, Size: c.size, Users: c.users, Verbose: c.verbose,
		Cluster: &bus.ClusterSpec{Ports: c.ports, Advertise: adv, Seeds: []string{c.seed}, CA: c.ca.CertPEM, Cert: cert, Key: key},
	}, nil
}
