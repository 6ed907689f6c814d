// Package bus is everything gorun does with NATS before a rank connects:
// the job's embedded nats-servers and the credentials that admit its
// ranks, or an existing server's (--nats). It is the only package of
// gorun that imports nats-server (make check-deps keeps it so).
//
//	users, seeds, err := bus.JobKeys(job, n) // a key per rank
//	srv, err := bus.Start(&bus.Spec{Name: "gorun", JobID: job, Size: n, Users: users})
//	defer srv.Shutdown()
//	// rank r connects to srv.URL() with seeds[r] (GORUN_NATS_CREDS)
//
// One server per host: the launcher starts one, each agent one more, all
// from a Spec (sent to an agent over its channel), so that a setting holds
// on every server of the job alike. A job on several hosts joins them in a
// cluster (Spec.Cluster): TLS routes under the job's CA (NewCA), one route
// per pair of servers, each watched (Server.WatchRoutes) because a route
// that closes loses messages silently. Each rank's nkey lets it publish only
// as itself (JobKeys; the subjects are internal/subject's).
//
// For --nats, External holds what gorun was given (a token, a .creds file,
// TLS files) or mints a user per rank and job with an account signing key.
//
// mpi/mpitest runs its jobs on a Spec.InProcess server, so that fast tests
// meet the same limits and permissions as a job under gorun.
package bus
