package launcher

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorun-hpc/gorun/internal/bus"
)

// agentListener listens, on adv's address if it is one, for the agents'
// calls, with TLS under a certificate of a CA of its own; pin is the
// certificate's hash, which the agents check.
func agentListener(adv string) (ln net.Listener, pin [sha256.Size]byte, err error) {
	ca, err := bus.NewCA("agents")
	if err != nil {
		return nil, pin, err
	}
	certPEM, keyPEM, err := ca.Issue(adv)
	if err != nil {
		return nil, pin, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, pin, err
	}
	pin = sha256.Sum256(cert.Certificate[0])
	listen := ":0"
	if ip := net.ParseIP(adv); ip != nil {
		listen = net.JoinHostPort(adv, "0")
	}
	ln, err = tls.Listen("tcp", listen, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return nil, pin, fmt.Errorf("cannot listen for the agents: %w", err)
	}
	return ln, pin, nil
}

// gather admits the agents that call st's listener until every host's has
// (their connections by host index), and stops listening. It fails, and
// ends the step, if srun ends first, after slurmAgentTimeout, or when ctx
// is done.
func (st *slurmStep) gather(ctx context.Context, hosts map[int]Host, secret string, logf func(string, ...any)) (map[int]*agentConn, error) {
	byNode := map[string]int{}
	for i, h := range hosts {
		byNode[h.Name] = i
	}
	type called struct {
		idx int
		a   *agentConn
	}
	calls := make(chan called)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var seen sync.Map
		for {
			c, err := st.ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				i, a, err := st.admit(c, secret, byNode, &seen, hosts)
				if err != nil {
					logf("an agent's call refused: %v", err)
					c.Close()
					return
				}
				select {
				case calls <- called{i, a}:
				case <-stop:
					a.kill()
				}
			})
		}
	})
	agents := map[int]*agentConn{}
	fail := func(err error) (map[int]*agentConn, error) {
		close(stop)
		st.ln.Close()
		for _, a := range agents {
			a.kill()
		}
		st.close(5 * time.Second)
		wg.Wait()
		return nil, err
	}
	timer := time.NewTimer(slurmAgentTimeout)
	defer timer.Stop()
	for len(agents) < len(hosts) {
		select {
		case c := <-calls:
			agents[c.idx] = c.a
		case <-st.ended:
			return fail(fmt.Errorf("srun ended before the agents of %d of %d nodes called%s", len(hosts)-len(agents), len(hosts), stderrNote(st.errs.String())))
		case <-timer.C:
			return fail(fmt.Errorf("the agents of %d of %d nodes did not call within %v%s", len(hosts)-len(agents), len(hosts), slurmAgentTimeout, stderrNote(st.errs.String())))
		case <-ctx.Done():
			return fail(context.Cause(ctx))
		}
	}
	close(stop)
	st.ln.Close()
	wg.Wait()
	return agents, nil
}

// admit reads a calling agent's proof and hello, within a bound.
func (st *slurmStep) admit(c net.Conn, secret string, byNode map[string]int, seen *sync.Map, hosts map[int]Host) (int, *agentConn, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 64<<10)
	kind, b, err := readFrame(br, nil)
	if err != nil {
		return 0, nil, err
	}
	var au agentAuth
	if kind != frameAuth || len(b) > 4096 || json.Unmarshal(b, &au) != nil {
		return 0, nil, fmt.Errorf("from %s: not an agent", c.RemoteAddr())
	}
	if subtle.ConstantTimeCompare([]byte(au.Secret), []byte(secret)) != 1 {
		return 0, nil, fmt.Errorf("from %s: wrong secret", c.RemoteAddr())
	}
	i, ok := byNode[au.Node]
	if !ok {
		return 0, nil, fmt.Errorf("from %s: node %q is not one of the job's", c.RemoteAddr(), au.Node)
	}
	if _, dup := seen.LoadOrStore(i, true); dup {
		return 0, nil, fmt.Errorf("from %s: node %q called twice", c.RemoteAddr(), au.Node)
	}
	kind, b, err = readFrame(br, nil)
	if err != nil {
		return 0, nil, err
	}
	a := &agentConn{host: hosts[i], via: "connection", in: closeWriter{c}, errs: st.errs, ended: make(chan struct{})}
	if kind != frameHello || json.Unmarshal(b, &a.hello) != nil {
		return 0, nil, fmt.Errorf("node %s: unexpected answer from the agent", au.Node)
	}
	c.SetDeadline(time.Time{})
	a.fw = &frameWriter{w: c}
	a.live = newLiveness()
	a.br = bufio.NewReaderSize(&endReader{r: liveReader{br, a.live}, end: func(err error) {
		if !errors.Is(err, io.EOF) {
			a.werr = err
		}
		close(a.ended)
	}}, 64<<10)
	a.killFn = func() { c.Close() }
	go beat(a.fw, a.ended)
	return i, a, nil
}
