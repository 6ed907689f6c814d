// This file describes mpi's wire protocol, for those who work on it: the
// package documentation (doc.go) is for those who use it.
//
// # Wire protocol
//
// ## Subjects
//
// Every subject of a job lives under gorun.v1.<job>, where <job> is the
// job id (GORUN_JOB_ID, a uuid). The version token lets a future wire format
// live beside this one. They are built in internal/subject only. Every
// subject a rank publishes on names it as the sender in its last token, and
// the servers gorun embeds let a rank publish only on those (each rank
// connects with an nkey of its own, GORUN_NATS_CREDS, whose permissions are
// subject.Permissions), so a receiver takes the sender from the subject:
//
//	gorun.v1.<job>.p2p.<dst>.<src>        frames from src to dst (dst subscribes to p2p.<dst>.*)
//	gorun.v1.<job>.ctl.ready.<src>        start-up request of src, answered by rank 0
//	gorun.v1.<job>.ctl.reply.<rank>.>     the rank's request replies (its inbox prefix)
//	gorun.v1.<job>.ctl.reach.<dst>.<src>  start-up probe of dst by src
//	gorun.v1.<job>.ctl.reached.<p>.<src>  src's answer to prober p's probe
//	gorun.v1.<job>.ctl.abort.<src>        Abort, heard by every rank
//	gorun.v1.<job>.mc.<src>               frames for every rank but src (SendAll), when size > 2
//
// ## Start-up
//
// Each rank connects (reconnection off: a lost connection is a lost job),
// subscribes to its inbox, the abort subject and then its probe subject,
// and flushes, so its server knows the subscriptions. Then every rank but
// 0 sends a request on its ready subject, retrying every 2 ms while nobody
// answers (NATS's no-responders status): its rank and job size (4 bytes
// each), the pid and machine identity its single-copy offers will name (4
// and 8 bytes; zero when it makes none), the eager credit it grants each
// peer (8 bytes), its shared-memory segment (16 bytes: the segment's
// identity, the local rank it opened it as and the pid it wrote there;
// zero when it opened none: see shmtransport.go), the round (1) and the id
// of the server it is connected to. Rank 0 subscribes and collects all
// size-1 requests.
//
// On one server (a job on one machine, mpitest) that is enough: a
// subscription is known to the server once its flush returns, so rank 0
// answers each request: a zero byte and the table of every rank's pid,
// machine, credit and segment (36 bytes each), or a one byte and the reason the job
// cannot start (ranks missing after the timeout, sizes that differ, a
// malformed request). Init returns after that answer, once the rank has
// asked its launcher, on its control socket (contract.QueryPid), which
// process it started as each rank of its machine that announced a pid
// other than this process's: only the pids the launcher confirms are ever
// read (without a launcher, only this process's).
//
// On a cluster (gorun runs one server per host, joined by routes), a
// subscription made on one server reaches the others asynchronously, over
// routes that may still be forming, and core NATS drops a message
// published before the receiver's interest has reached the sender's
// server. So a second round follows. Rank 0 names one prober per server,
// the lowest rank connected to it (answer byte 2), and tells the others to
// wait (byte 3). Each prober publishes a probe to every other rank's probe
// subject, with its answer subject as the reply subject, until every rank
// has answered there. A probe its server delivers to no one comes back at
// once as a message with the status 503 (NATS's no-responders) and goes
// again 2 ms later (backing off to 50 ms); one not answered goes again
// after a second (backing off to 4 s). Once every rank has answered, the
// prober's server knows every rank's probe subscription,
// and with it the inbox subscription made before it on the same
// connection (one route connects two servers, and a server forwards one
// client's subscriptions over it in order; gorun's servers set one route
// per pair, no route pool; messages also take no multi-hop path, so a
// server that knows a remote interest has the route to it). Then every
// rank sends its round-2 request (the same announcement), each prober
// after its probes; rank 0 (which probes for its own server first if it is
// a prober) answers them all with the table once all have come, and Init
// returns. The cost is one probe per rank per server, and two ready rounds.
//
// Init returns only after that answer, so no message is ever published to a
// rank whose inbox is not known to the sender's server (core NATS would
// drop it); a frame that arrives before the answer waits for it.
//
// ## Validation
//
// The bus is untrusted input. Every field of every frame is checked against
// what the receiver knows before it is used: the sender (the subject's,
// which the header and any token must repeat), kind, tag, the size an RTS
// announces (1 byte to 256 TiB; a chunked receive allocates more than 256
// MiB only as the bytes arrive), message ids, grants (increasing, within
// the message), credit (never more than was spent; a sender never beyond
// the credit it was granted), chunk offsets (in order, within the grant),
// single-copy offers (only the pid and machine the sender announced at
// start-up: a rank never reads a process that is not the sending rank) and
// Abort codes (1 to 255). A frame that fails is a protocol error: every
// blocked and later call fails with an error wrapping ErrProtocol that names
// the subject and the field, and under gorun the rank says so and exits
// with status 1. A frame whose subject names no rank of the job cannot come
// from a job member; it is dropped and counted.
//
// ## Transports
//
// The engine (matching, credit, rendezvous, multicast, single copies) sees
// frames only: a header (kind, src, comm, tag, id, n) and a payload, sent
// to one rank or to every other, and handed to it with the sender the
// transport vouches for (transport.go). The NATS transport
// (natstransport.go) owns the subjects, the binary header or reply-subject
// token of each frame, the start-up handshake above and the connection's
// events; an in-memory one (memtransport.go, over mpi/internal/memnet) runs the
// same engine in tests, with seeded delays, reordering across senders and
// streams, ranks cut off and receivers stopped. What a transport must
// promise: one sender's frames on one stream (inbox, multicast) arrive in
// order; the two streams are independent.
//
// ## Frames
//
// A frame is a NATS message on the receiver's inbox. Frames without a NATS
// reply subject start with a 40-byte little-endian header:
//
//	offset size field
//	0      1    kind: 1 eager, 2 RTS, 3 CTS, 4 credit, 5 cancel, 6 pull, 7 go, 8 done
//	1      3    zero
//	4      4    src: world rank of the sender of the frame
//	8      8    comm: communicator context id (world 0; Split/Dup ids are hashes of
//	            parent id, sequence and color; an odd id is a communicator's internal context)
//	16     4    tag
//	20     4    zero
//	24     8    id: message id, unique per sender (RTS, CTS, cancel, pull, go, done)
//	32     8    n: RTS the message size; CTS bytes granted so far; credit bytes returned;
//	            done 0, or 1 when the copy failed
//
// Eager frames carry the whole message after the header; an RTS may carry
// a single-copy offer (20 bytes: the sender's pid as 4 bytes, its
// machine's identity as 8, the message's address as 8). Frames that carry
// only message bytes have their header in the NATS reply subject instead, as
// a token, so that the payload goes out without another copy:
//
//	c.<src>.<id>.<offset>   a data chunk of rendezvous message id (kind 10 to the
//	                        engine; the in-memory transport gives it a binary header)
//	e.<src>.<comm>.<tag>    a whole eager message of 4 KiB or more
//
// ## Protocol
//
// Small messages (up to EagerLimit, 64 KiB by default, and always within the
// server's max_payload) go eagerly: one frame. To keep a busy receiver from
// being flooded, each sender holds eager credit towards each peer: an equal
// share of the receiver's EagerBudget (64 MiB by default), never less than
// two full eager messages. A frame costs its length plus 128 bytes. Eager
// messages fill at most half the share; the other half (the reserve) is
// for RTSs and empty messages. A send whose message the credit left beyond
// the reserve does not cover, but whose frame the credit left does, goes
// as a rendezvous (below), whatever its size: so a receiver that holds a
// sender's messages unreceived while it waits for a later one (a receive
// by tag, out of the order sent) still gets it, as long as fewer than
// reserve/128 RTSs wait before it. A send without even a frame's credit
// waits in a per-destination queue, in order. The
// receiver returns credit (a credit frame) when a message is taken by a
// receive, once a quarter of the share is used.
//
// Larger messages use rendezvous. The sender sends an RTS (costing 128
// bytes of credit); the data stays at the sender. When a receive matches
// the RTS, the receiver grants the sender up to two chunks at a time with
// CTS frames, from its RendezvousWindow (32 MiB by default, shared by all
// incoming transfers, first come first served); the sender publishes the
// granted chunks (max_payload bytes each); the receiver copies each into the
// message buffer (a single-chunk message is kept as it came) and returns
// the chunk's bytes to the window. A sender that gives up (its ctx ends)
// sends cancel: an unmatched RTS is dropped, a matched receive fails with
// ErrCanceled. A synchronous send goes as a rendezvous whatever its size;
// the RTS of an empty one (n = 0, never multicast, no offer) is answered
// with done when a receive matches it, and the receive is complete at once.
// (A cancel that crosses that done finds nothing at the receiver: the
// receive has the message, and the sender's Ssend reports its ctx's error.)
//
// Single copy: when sender and receiver run on one machine (the same boot
// id and PID namespace, which the offer's identity names), the receiver
// copies the message straight out of the sender's memory with
// process_vm_readv, and only the handshake goes through the bus: the RTS
// carries the offer; the receiver, if it can read that peer (it tries one
// byte the first time; Yama's ptrace_scope, for one, may forbid it),
// answers pull instead of granting; the sender answers go, from which point
// the send can no longer be withdrawn (a blocking send whose ctx ends waits
// up to 2 s more for the copy, then gives the receiver up for dead); the
// receiver copies and answers done
// (n = 1 if the copy failed, which fails both ends), and the send
// completes. A receiver that cannot read the sender, or whose launcher did
// not confirm the sender's pid, grants chunks instead.
// A receive into a buffer too small for the message (RecvInto) answers
// done at once, without pulling or granting: the message is taken and
// dropped. WithSingleCopy(false) turns single copies off. The copy goes into a buffer of the
// receive's own, outside the rendezvous window.
//
// SendAll on a communicator that spans the world publishes its frames once,
// on the multicast subject; the server fans them out (connections have no
// echo, so the sender does not get its own). The frames are the same as
// above. An eager one needs credit at every peer, and waits in a multicast
// queue, in order, until it has it. A large one is announced with one RTS;
// each rank grants it as its receive matches, and the sender publishes a
// chunk once every rank has granted it, so the slowest receiver sets the pace
// and no receiver's bound changes. Ranks that pull are let copy once every
// rank has answered the RTS, and chunks are not held for them; a withdrawn
// SendAll thus reaches no rank, by either way. The multicast and inbox subscriptions are
// delivered independently, so SendAll messages are ordered among themselves
// but not with Send messages of the same tag.
//
// Because one rank publishes through one connection, NATS delivers its
// frames to each receiver in order; eager frames and RTSs towards one peer
// leave in send order (credit waits are a queue), and matching scans in
// arrival order. So messages are non-overtaking.

package mpi
