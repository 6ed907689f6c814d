// Package mpi is the runtime a gorun rank imports: Init, communicators,
// point-to-point messages (blocking and non-blocking) and their errors, over
// a NATS bus.
//
// # Usage
//
// A whole program: every rank runs the same main, and behaves by its rank.
//
//	func main() {
//		mpi.Main(func(ctx context.Context, world *mpi.Comm) error {
//			sum := mpi.Must(collectives.AllreduceValue(ctx, world, world.Rank(), collectives.Sum))
//			fmt.Printf("rank %d of %d: the ranks add up to %d\n", world.Rank(), world.Size(), sum)
//			return nil
//		})
//	}
//
// Run it with gorun: `gorun -n 4 ./main.go` (a file, a package directory
// or a built binary; gorun builds Go sources against the gorun it was
// built from, so a program anywhere works); `gorun init myjob` makes a new
// project with a go.mod. Alone, without gorun, a program is a world of one
// rank. Every call has a runnable example: `go doc -all
// github.com/gorun-hpc/gorun/mpi`, or the examples folder of the module.
//
// The same without Main, as the calls are:
//
//	world, err := mpi.Init(ctx) // joins the job gorun started; alone: a world of 1
//	if err != nil { ... }
//	defer world.Close()
//	if world.Rank() == 0 {
//		err = world.Send(ctx, 1, 0, []byte("hi"))
//	} else if world.Rank() == 1 {
//		msg, status, err := world.Recv(ctx, 0, mpi.AnyTag)
//	}
//
// Semantics follow MPI where Go has no reason to differ: messages between
// one pair of ranks on one communicator with one tag arrive in the order
// sent; tags are in [0, MaxTag]; AnySource and AnyTag match anything on
// receive; communicators (Split, Dup) are isolated from each other; a blocked
// call returns when its ctx is done, with an error wrapping ctx.Err(). Errors
// wrap the sentinels in errors.go (ErrInit, ErrRank, ErrTag, ErrClosed,
// ErrAborted, ErrConnLost, ErrCanceled, ErrTruncate, ErrPeerLost,
// ErrPeerDied, ErrProtocol, ErrNilContext: a nil ctx is an error, never a panic, and
// leaves the communicator usable). Numbers travel as raw little-endian bytes (SendSlice,
// RecvSlice, AsBytes, FromBytes), never gob. Nothing is global: many worlds
// can live in one process, as mpitest shows.
//
// # Ranks that leave
//
// A rank that closes its world tells the others, after everything it sent:
// from then on a receive from it that none of its messages can match, a
// send to it and a SendAll fail at once with ErrPeerLost (inside a
// *RankError naming it), where MPI would wait forever. A receive from
// AnySource waits on. Under gorun, a rank that leaves without closing fails
// the job, and so does a rank that dies, unless gorun runs with
// --on-failure continue: then gorun tells every rank as soon as the
// process ends (a few milliseconds on one host), and what waits for the
// dead rank fails with ErrPeerDied (which is ErrPeerLost too), as for a
// rank that closed; the job goes on without it. The others can then decide
// together (Agree: an AND that every survivor gets alike, even if more ranks
// are lost meanwhile) and go on on a communicator of themselves (Shrink),
// as ULFM's MPIX_Comm_agree and MPIX_Comm_shrink do.
//
// # When a job hangs
//
// Each rank keeps what its goroutines are blocked in (the call, its
// communicator, peer, tag and size, since when, and the program's line that
// made it); gorun asks for it to print its hang report (see the README's
// "When a job hangs"). A call is entered only once it has to wait: the fast
// path costs nothing.
//
// # Wire protocol
//
// How ranks find each other, what a frame holds and how each is checked,
// eager credit, rendezvous, multicast and single copies: see protocol.go.
//
// # Memory bound
//
// A receiver holds at most: the messages its posted receives asked for; the
// eager messages that arrived before their receive, bounded by EagerBudget
// (plus 128 bytes of bookkeeping charged per message); and the rendezvous
// data in flight towards it, bounded by RendezvousWindow. Neither nats.go's
// per-subscription pending limit (lifted, since flow control bounds it) nor
// the server's max_pending (64 MiB by default; gorun's embedded server sets
// 256 MiB) can be reached by that traffic, so no slow-consumer drop happens.
// A receiver that stops reading altogether (stopped in a debugger, by
// SIGSTOP, a suspended VM) leaves that much waiting in its server, whose
// write deadline gorun sets to 3 minutes: a receiver stopped for less
// resumes with nothing lost (a test stops one for 60 s while four ranks
// stream to it).
// If one happens anyway, or the connection is lost, every blocked and later
// call fails with ErrConnLost, and under gorun the rank prints why and exits
// with status 1: nothing is lost silently. The rank sees only a lost
// connection; gorun's log of the server says which rank it dropped and why
// ("rank 3: its NATS server dropped it: Slow Consumer Detected: WriteDeadline
// of 3m0s exceeded ...").
//
// # Abort
//
// Abort publishes (rank, code) on its abort subject and exits with code (a
// code outside [1, 255] is taken as 1).
// Every other rank fails its blocked and later calls with an *AbortError;
// under gorun it also exits with code, so the whole job ends.
package mpi
