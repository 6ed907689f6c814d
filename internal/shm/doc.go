// Package shm moves frames between the ranks of one host through a shared
// memory segment, with no system call on the fast path: the way Open MPI's
// sm BTL, MPICH's ch4 and UCX's mm transport do (STYLE.md R16).
//
// # Who creates and removes the segment
//
// The segment is one file per job and host, in /dev/shm, mode 0600, with an
// unguessable name (NewPath: the creator's pid and 128 random bits).
// Whoever starts the ranks of a host creates it before it starts them
// (gorun on its own host, the agent on a remote one) with Create, and hands
// the path to the ranks (an environment variable); each rank maps it with
// Open(path, rank). The creator removes it with Remove once every local rank
// has opened it (a mapping outlives the name: the memory is freed when the
// last rank unmaps it), and in any case when the job ends. A creator that
// was SIGKILLed cannot: Sweep, run by the host's next launcher or agent (or
// the keeper), removes every segment of this user whose creator is dead, so
// that /dev/shm never fills up. Open refuses a file that is not a regular
// file of this user with mode 0600, so that no other user or job can plant
// or read one.
//
// # Layout
//
// Offsets, never pointers: each process maps the segment at its own
// address. All offsets are computed from the header's two figures (local
// ranks n, ring bytes c), which Open checks against the file's size.
//
//	0                 header (128 B): magic, version, n, c, size
//	128 + r*128       rank r's doorbell line: the futex word, then the pid
//	                  of the process that opened it as rank r (PeerPID)
//	128 + n*128       n*(n-1) rings, one per ordered (sender, receiver) pair:
//	                  a control block (the tail's line, the head's line:
//	                  256 B) then c bytes of data
//	page-aligned      the channel area: Channels channels, each a
//	                  communicator's flags for collectives (coll.go)
//
// One single-producer single-consumer ring per pair, rather than one ring
// per receiver that all senders share: a frame's sender is the ring it came
// from, by construction (no field the writer chooses); one sender's frames
// are one ordered stream; senders never contend for a shared tail (no
// compare-and-swap, no lock a dead sender could hold); and a sender that
// scribbles on its ring spoils only its own frames. The cost is memory,
// n*(n-1) rings: with the default 256 KiB, 14 MiB at 8 local ranks and
// 248 MiB at 32 (tmpfs pages are only allocated once written).
//
// # A ring
//
// The sender writes a frame (an 8-byte word: the length, the frame's
// sequence number modulo 2^24, and a stream byte that the receiver gets
// back, so that the mpi transport can carry a rank's inbox and its
// multicast frames on one ring; then the payload, padded to 8 bytes; a
// frame may wrap around the ring's end) and then publishes it with an
// atomic store of the tail, last. The receiver polls the tail, copies the
// frame out (it reads each word once, so a writer changing it meanwhile
// cannot make it inconsistent) and publishes its head. Head and tail are
// byte counts that only grow; each sits on its own 128-byte line. Each side
// keeps its own position in its own memory and only reads the other's: the
// receiver checks that the tail is at most a ring ahead of its head, that
// the length fits both the ring and what the tail published, and that the
// sequence number is the next one; a ring that fails is reported once (a
// *CorruptError naming the sender) and ignored from then on.
//
// Ring capacity (RingBytes, 256 KiB): at least three of the engine's
// largest eager messages (64 KiB and a 40-byte header), and about four
// thousand small ones, so that a burst of small sends finds room; a frame
// holds at most the ring less its 8-byte word. A full ring makes Send
// report ErrFull at once: the caller queues (the engine's lock may be held)
// and retries when Wait says the receiver made room.
//
// # Waiting
//
// Each rank has a doorbell: a 32-bit word in the segment. Wait first spins
// on the rings as the caller's Spin says: where the host has a core for
// each rank, looking without a break at first, then yielding the core
// (Yield) between looks; where it has more ranks than cores, yielding from
// the first look, and for longer (the ranks then take turns, and the one
// waited for runs at once). Then it arms the
// doorbell, checks the rings again, and sleeps, with a timeout so that a
// dead peer never strands it. It sleeps on its bell (bell.go): a datagram
// socket of its own, named after the segment and the rank, read through
// Go's network poller, so that no thread waits in a system call and the
// process's other I/O (its NATS connection) is served at once; where the
// socket cannot be had, on the doorbell's word with FUTEX_WAIT (a shared
// futex: not FUTEX_PRIVATE_FLAG, the word is in a shared mapping). The
// armed word says which (armBell, armFutex). A sender, after publishing a
// frame, rings the receiver's doorbell (one datagram, or FUTEX_WAKE) only
// if it is armed, as UCX's UCT_MM_IFACE_FIFO_HEAD_EVENT_ARMED: a busy
// receiver costs its senders no system call. A sender that found a ring
// full sets the ring's want-room word; the receiver that makes room there
// rings the sender's doorbell the same way. A channel's waiters (coll.go)
// sleep the same way, each armed in a word of the channel's, and the last
// arrival rings them.
package shm
