// Package subject builds and checks the NATS subjects of a gorun job.
//
// Every subject of a job lives under "gorun.v1.<job>.", so jobs sharing one
// NATS server or cluster never see each other's traffic, and a future wire
// format can move to "gorun.v2" beside this one.
package subject

import (
	"fmt"
	"strconv"
	"strings"
)

// Root is the first two tokens of every subject: the project and the
// protocol version.
const Root = "gorun.v1"

const (
	inboxT = Root + ".%s.p2p.%d"       // job, rank: every frame for one rank
	readyT = Root + ".%s.ctl.ready"    // job: start-up handshake, answered by rank 0
	abortT = Root + ".%s.ctl.abort"    // job: Abort, to every rank
	reachT = Root + ".%s.ctl.reach.%d" // job, rank: start-up probe, answered by that rank
	mcastT = Root + ".%s.mc"           // job: frames for every rank but the sender
	allT   = Root + ".%s.>"            // job: everything of one job
)

// Inbox is the subject on which rank receives every frame sent to it.
func Inbox(job string, rank int) string { return fmt.Sprintf(inboxT, job, rank) }

// Ready is the subject of the start-up handshake, to which rank 0 answers.
func Ready(job string) string { return fmt.Sprintf(readyT, job) }

// Reach is the subject rank answers during start-up, so that a rank on
// another server of a cluster can tell that its server knows rank's
// subscriptions.
func Reach(job string, rank int) string { return fmt.Sprintf(reachT, job, rank) }

// Abort is the subject on which an aborting rank tells every other rank.
func Abort(job string) string { return fmt.Sprintf(abortT, job) }

// Multicast is the subject every rank listens on for frames sent to all
// ranks with one publish.
func Multicast(job string) string { return fmt.Sprintf(mcastT, job) }

// All matches every subject of the job.
func All(job string) string { return fmt.Sprintf(allT, job) }

// CheckJob reports whether job can be one token of a subject: not empty, at
// most 64 bytes, and made of letters, digits, '-' and '_' only (a uuid is).
func CheckJob(job string) error {
	if job == "" {
		return fmt.Errorf("job id is empty")
	}
	if len(job) > 64 {
		return fmt.Errorf("job id %.20q... is longer than 64 bytes", job)
	}
	for _, r := range job {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return fmt.Errorf("job id %q contains %q; only letters, digits, '-' and '_' are allowed", job, r)
		}
	}
	return nil
}

// ParseInbox returns the job and rank of an inbox subject.
func ParseInbox(subj string) (job string, rank int, err error) {
	rest, ok := strings.CutPrefix(subj, Root+".")
	if !ok {
		return "", 0, fmt.Errorf("subject %q is not under %s", subj, Root)
	}
	tok := strings.Split(rest, ".")
	if len(tok) != 3 || tok[1] != "p2p" {
		return "", 0, fmt.Errorf("subject %q is not an inbox", subj)
	}
	rank, err = strconv.Atoi(tok[2])
	if err != nil || rank < 0 {
		return "", 0, fmt.Errorf("subject %q: bad rank %q", subj, tok[2])
	}
	return tok[0], rank, nil
}
