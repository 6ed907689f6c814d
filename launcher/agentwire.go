package launcher

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/gorun-hpc/gorun/internal/bus"
)

// The agent protocol. gorun and an agent talk over the agent's ssh session:
// gorun writes frames on its standard input, the agent answers on its
// standard output. A frame is a kind byte, a 4-byte big-endian length and
// that many bytes. Nothing of it is on a command line: the job's secret
// and the host's TLS key travel inside the (encrypted) ssh channel only.
const (
	// gorun to agent
	frameJob   = 'J' // JSON agentJob: start the host's server and ranks
	frameStdin = 'I' // bytes for rank 0's standard input; empty: EOF
	frameStop  = 'S' // one byte: 0 SIGTERM, 1 SIGKILL (and every descendant)
	frameAsk   = 'Q' // 4-byte id: the states of the host's ranks, for the hang report
	frameClock = 'C' // 8 bytes, gorun's time: the agent answers frameTime
	frameDump  = 'D' // 4-byte id: the ranks give their traces so far; the agent answers frameDumped
	frameMesh  = 'M' // JSON map server name -> host:port: every route listener of the job's cluster (mesh repair)
	frameGo    = 'G' // empty: the job's cluster has formed, the host's ranks may start
	frameAdmit = 'A' // JSON admission: the host's server's turn to join the job's cluster
	// agent to gorun
	frameHello      = 'H' // JSON agentHello, first thing the agent says
	frameOutput     = 'O' // 4-byte rank, 1 byte stream (1 stdout, 2 stderr), then output bytes
	frameExit       = 'X' // JSON agentExit: how a rank ended
	frameFail       = 'F' // text: the agent could not run the job (its server did not start)
	frameFault      = 'R' // text: the job cannot go on (a route of the host's server closed)
	frameStates     = 'T' // the 4-byte id of a frameAsk, then JSON: rank -> its blocked.State
	frameTime       = 'K' // a frameClock's 8 bytes, then the agent's time (Unix ns, 8 bytes)
	frameDumped     = 'E' // the 4-byte id of a frameDump: done
	frameRouted     = 'U' // JSON []string: the host's server has routes to every other of the job's (empty), or after ClusterFormTimeout lacks those
	frameJoined     = 'N' // empty: every rank of the host has returned from Init
	frameListen     = 'L' // text host:port: where the host's server listens for routes
	frameJoinedMesh = 'W' // empty: the host's server, admitted, has its routes to every server admitted before
	// either way: frameBeat, a heartbeat (heartbeat.go)

	// maxFrame bounds a frame: larger ones are refused as a broken stream.
	maxFrame = 64 << 20
	// outputChunk is the most output one frame carries.
	outputChunk = 64 << 10
)

// agentHello is what an agent says about its host.
type agentHello struct {
	OS, Arch string
	CPUs     int    // cores it may use (its GOMAXPROCS)
	Hostname string // the host's own name
	Addr     string // the address ssh reached it at (SSH_CONNECTION), if known
}

// agentJob is what gorun asks an agent to run.
type agentJob struct {
	Job    hostJob
	Server *bus.Spec // nil: ranks use Job.NATSURL (--nats)
	Grace  time.Duration
}

// agentExit is a rankExit on the wire.
type agentExit struct {
	Rank, Pid, Code, Signal int
	Err                     string
	NotStarted              bool
	Report                  rankReport
}

// frameWriter writes frames, one at a time.
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	hdr [5]byte
	err error
}

func (fw *frameWriter) write(kind byte, parts ...[]byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.err != nil {
		return fw.err
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	fw.hdr[0] = kind
	binary.BigEndian.PutUint32(fw.hdr[1:], uint32(n))
	if _, err := fw.w.Write(fw.hdr[:]); err != nil {
		fw.err = err
		return err
	}
	for _, p := range parts {
		if _, err := fw.w.Write(p); err != nil {
			fw.err = err
			return err
		}
	}
	return nil
}

func (fw *frameWriter) json(kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return fw.write(kind, b)
}

// readFrame reads one frame into buf (grown as needed).
func readFrame(r *bufio.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("agent protocol: a frame of %d bytes", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// exitFromWire turns an agentExit into a rankExit on host.
func exitFromWire(e agentExit, host string) rankExit {
	x := rankExit{Rank: e.Rank, Host: host, Pid: e.Pid, Code: e.Code, Signal: syscall.Signal(e.Signal), NotStarted: e.NotStarted, Report: e.Report}
	if e.Err != "" {
		x.Err = errors.New(e.Err)
	}
	return x
}
