// Package invariant lets the tests of packages built on mpi check what
// mpi holds inside, without a test-only API in mpi itself: mpi sets the
// hooks at start-up.
package invariant

// Quiescent, set by package mpi, returns an error naming what the rank of
// comm (an *mpi.Comm) still holds that a quiet job must not: a posted
// receive or an unexpected message, a send or a rendezvous in progress, a
// queued send, rendezvous window not given back, unexpected bytes charged
// to a peer. Call it once every rank is done with the traffic it started,
// at a barrier after which no rank sends anything new.
var Quiescent func(comm any) error

// Standing, set by package mpi, marks req (an *mpi.Request, a posted
// receive) as one that stays posted for the communicator's life, such as
// the collectives' receive of another rank's news: Quiescent does not
// count it.
var Standing func(req any)
