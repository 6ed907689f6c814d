//go:build linux

package shm

import (
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The bell: how a rank sleeps without a thread in a system call.
//
// A goroutine asleep in FUTEX_WAIT holds its thread in a system call, and
// that thread the process's P (GOMAXPROCS is 1 where a host has a core or
// less per rank) until the runtime's monitor takes it back: 20 us to 10
// ms, by how idle the process has been. Until then nothing else of the
// process runs, and its network I/O (the NATS connection) waits: a rank's
// Close, which flushes its connection, took 1-11 ms with the ring poller
// asleep so, 0.1-2 ms before the rings. The P taken back, another thread
// woken to look for work, and the sleeper finding a P again cost three or
// four thread switches a wake-up too. So each endpoint binds a datagram
// socket in the abstract namespace, named after the segment and its local
// rank, and sleeps on it through Go's network poller: the goroutine parks,
// its thread waits in epoll holding no P, beside the process's other I/O,
// and a sender's one datagram wakes it.
//
// The doorbell word says how to wake its rank: armFutex (FUTEX_WAKE on the
// word: an endpoint that could not bind its socket) or armBell (a
// datagram). A datagram carries nothing: it is a hint, after which the
// woken rank looks at the segment again, so one from anyone else (the name
// is in /proc/net/unix for all to see) costs a look and nothing more. The
// abstract namespace is the network namespace's: the ranks of one segment
// share it, as they share a host.
//
// The sends and reads are raw system calls (no entersyscall): they never
// block (MSG_DONTWAIT), and a system call through syscall.Syscall wakes
// the runtime's monitor thread if it sleeps (as it does while the process
// is idle): a thread switch for nothing, at every wake-up.
const (
	armFutex = 1
	armBell  = 2
)

// A bell is an endpoint's socket, and the wake-ups it has had as a channel
// that each closes: every goroutine of the process asleep on the segment
// (the ring poller, a collective's wait) waits on it, and looks again.
type bell struct {
	in    *net.UnixConn          // bound to this rank's name; read by loop
	addrs []unix.RawSockaddrUnix // by local rank
	alen  []uintptr              // each address's length

	omu sync.RWMutex // held to send: close closes out under it
	out int          // unbound: sends to the others' names; -1 once closed

	mu     sync.Mutex
	gen    chan struct{} // closed at the next wake-up
	closed bool
}

// openBell binds local rank rank's bell for the segment at path, of n
// local ranks.
func openBell(path string, rank, n int) (*bell, error) {
	base := filepath.Base(path) + "."
	addrs, alen := make([]unix.RawSockaddrUnix, n), make([]uintptr, n)
	for r := range addrs {
		name := base + strconv.Itoa(r)
		if len(name)+1 > len(addrs[r].Path) {
			return nil, unix.ENAMETOOLONG
		}
		addrs[r].Family = unix.AF_UNIX
		for i := range len(name) { // Path[0] stays 0: the abstract namespace
			addrs[r].Path[1+i] = int8(name[i])
		}
		alen[r] = unsafe.Offsetof(addrs[r].Path) + 1 + uintptr(len(name))
	}
	in, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: "@" + base + strconv.Itoa(rank), Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	out, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		in.Close()
		return nil, err
	}
	b := &bell{in: in, out: out, addrs: addrs, alen: alen, gen: make(chan struct{})}
	go b.loop()
	return b, nil
}

// loop reads the datagrams until the socket closes, and wakes the
// process's sleepers once for each batch.
func (b *bell) loop() {
	rc, err := b.in.SyscallConn()
	if err != nil {
		return
	}
	var buf [16]byte
	for {
		got := false
		err := rc.Read(func(fd uintptr) bool {
			for {
				_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), unix.MSG_DONTWAIT, 0, 0)
				switch e {
				case 0:
					got = true
				case unix.EINTR:
				default: // EAGAIN: the queue is empty
					return got || e != unix.EAGAIN
				}
			}
		})
		if err != nil {
			return // closed
		}
		b.wake()
	}
}

// wake wakes this process's sleepers.
func (b *bell) wake() {
	b.mu.Lock()
	if !b.closed {
		close(b.gen)
		b.gen = make(chan struct{})
	}
	b.mu.Unlock()
}

// next is what the next wake-up closes: take it before arming, so that a
// wake-up between the arming and the sleep is not lost. Nil once the bell
// is closed (a sleep then lasts its timeout).
func (b *bell) next() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	return b.gen
}

// ring wakes local rank r's process: one datagram, or none for this
// process's own rank. A full queue means it has wake-ups to read already;
// a name nobody holds, that it has closed: neither is an error.
func (b *bell) ring(r, self int) {
	if r == self {
		b.wake()
		return
	}
	if r < 0 || r >= len(b.addrs) {
		return
	}
	b.omu.RLock()
	if b.out >= 0 {
		unix.RawSyscall6(unix.SYS_SENDTO, uintptr(b.out), uintptr(unsafe.Pointer(&ding)), 1, unix.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&b.addrs[r])), b.alen[r])
	}
	b.omu.RUnlock()
}

// ding is what a datagram holds: one byte, which nobody reads.
var ding byte = 1

// close stops the bell and wakes its sleepers, which from then on sleep
// until their timeouts.
func (b *bell) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.gen)
	}
	b.mu.Unlock()
	b.in.Close()
	b.omu.Lock()
	if b.out >= 0 {
		unix.Close(b.out)
		b.out = -1
	}
	b.omu.Unlock()
}
