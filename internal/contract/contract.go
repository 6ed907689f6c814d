// Package contract is the launch contract between gorun and its ranks, in
// one place: the environment variables gorun sets for every rank, which
// package mpi reads. Both the launcher and mpi import it; it imports only
// the standard library, so the launcher links nothing of mpi.
package contract

// The environment of every rank.
const (
	Rank      = "GORUN_RANK"       // the rank, 0 to Size-1
	Size      = "GORUN_SIZE"       // the job's ranks
	LocalRank = "GORUN_LOCAL_RANK" // among the ranks of one host
	LocalSize = "GORUN_LOCAL_SIZE" // the ranks of that host
	JobID     = "GORUN_JOB_ID"     // the job's id: a token of every subject
	NATSURL   = "GORUN_NATS_URL"   // the bus, as the rank reaches it
	NATSToken = "GORUN_NATS_TOKEN" // a shared server's token: only ever in an environment
	NATSCreds = "GORUN_NATS_CREDS" // the rank's own credentials: only ever in its environment
	NATSCA    = "GORUN_NATS_CA"    // a PEM file: the CA of a --nats server's certificate
	NATSCert  = "GORUN_NATS_CERT"  // a PEM file: the client certificate for a --nats server
	NATSKey   = "GORUN_NATS_KEY"   // a PEM file: that certificate's key
)

// Prefix starts every variable of the contract: a user may not set one
// with -x.
const Prefix = "GORUN_"
