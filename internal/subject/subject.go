// Package subject builds and checks the NATS subjects of a gorun job, and
// the permissions that let each rank use only its own.
//
// Every subject of a job lives under "gorun.v1.<job>.", so jobs sharing one
// NATS server or cluster have subjects of their own, and a future wire
// format can move to "gorun.v2" beside this one. Every subject a rank
// publishes on names that rank as the sender in its last token (or, for
// replies, the rank it answers), so that a server enforcing Permissions
// vouches for the sender: a receiver takes the sender from the subject, never
// from the frame.
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
	inboxT = Root + ".%s.p2p.%d.%d"      // job, dst, src: frames from src to dst
	readyT = Root + ".%s.ctl.ready.%d"   // job, src: start-up handshake, answered by rank 0
	replyT = Root + ".%s.ctl.reply.%d"   // job, rank: prefix of the rank's reply subjects
	abortT = Root + ".%s.ctl.abort.%d"   // job, src: Abort, to every rank
	diedT  = Root + ".%s.ctl.died.%d"    // job, rank: gorun says the rank died (--on-failure continue)
	reachT = Root + ".%s.ctl.reach.%d"   // job, dst: prefix of the start-up probes of dst
	backT  = Root + ".%s.ctl.reached.%d" // job, prober: prefix of the answers to its probes
	mcastT = Root + ".%s.mc.%d"          // job, src: frames for every rank but the sender
	allT   = Root + ".%s.>"              // job: everything of one job
	wildT  = Root + ".%s.%s.*"           // job, a prefix: one token more
	p2pT   = Root + ".%s.p2p.%d"         // job, dst
	anyT   = Root + ".%s.p2p.*.%d"       // job, src: every inbox, as src
	replyA = Root + ".%s.ctl.reply.*.>"  // job: every rank's replies (rank 0 answers)
	replyO = Root + ".%s.ctl.reply.%d.>" // job, rank: the rank's own replies
)

// Inbox is the subject of the frames that rank src sends to rank dst.
func Inbox(job string, dst, src int) string { return fmt.Sprintf(inboxT, job, dst, src) }

// InboxPrefix is what every subject of rank dst's inbox starts with; the
// sender's rank follows it.
func InboxPrefix(job string, dst int) string { return fmt.Sprintf(p2pT, job, dst) + "." }

// InboxAll is the subscription of rank dst's inbox: frames from every rank.
func InboxAll(job string, dst int) string { return fmt.Sprintf(p2pT, job, dst) + ".*" }

// Ready is the subject on which rank src asks rank 0 to start.
func Ready(job string, src int) string { return fmt.Sprintf(readyT, job, src) }

// ReadyPrefix is what every start-up request starts with; the asking rank
// follows it.
func ReadyPrefix(job string) string { return Root + "." + job + ".ctl.ready." }

// ReadyAll is rank 0's subscription to every start-up request.
func ReadyAll(job string) string { return fmt.Sprintf(wildT, job, "ctl.ready") }

// ReplyPrefix is the inbox prefix of rank's request-reply subjects (the
// start-up answer comes there): nats.CustomInboxPrefix.
func ReplyPrefix(job string, rank int) string { return fmt.Sprintf(replyT, job, rank) }

// Abort is the subject on which rank src tells every rank it aborts.
func Abort(job string, src int) string { return fmt.Sprintf(abortT, job, src) }

// AbortPrefix is what every abort subject starts with; the aborting rank
// follows it.
func AbortPrefix(job string) string { return Root + "." + job + ".ctl.abort." }

// AbortAll is every rank's subscription to the others' Abort.
func AbortAll(job string) string { return fmt.Sprintf(wildT, job, "ctl.abort") }

// Died is the subject on which gorun, connected as rank (with its
// credentials), tells every rank that rank died and the job goes on
// without it (gorun --on-failure continue).
func Died(job string, rank int) string { return fmt.Sprintf(diedT, job, rank) }

// DiedPrefix is what every Died subject starts with; the dead rank follows
// it.
func DiedPrefix(job string) string { return Root + "." + job + ".ctl.died." }

// DiedAll is every rank's subscription to the deaths of the others.
func DiedAll(job string) string { return fmt.Sprintf(wildT, job, "ctl.died") }

// Reach is the subject on which rank src probes, at start-up, whether its
// server knows rank dst's subscriptions (see mpi's doc, Start-up).
func Reach(job string, dst, src int) string {
	return fmt.Sprintf(reachT, job, dst) + "." + strconv.Itoa(src)
}

// ReachPrefix is what every probe of rank dst starts with; the prober
// follows it.
func ReachPrefix(job string, dst int) string { return fmt.Sprintf(reachT, job, dst) + "." }

// ReachAll is rank dst's subscription to the probes of every rank.
func ReachAll(job string, dst int) string { return fmt.Sprintf(reachT, job, dst) + ".*" }

// Reached is the subject on which rank src answers the probes of rank
// prober.
func Reached(job string, prober, src int) string {
	return fmt.Sprintf(backT, job, prober) + "." + strconv.Itoa(src)
}

// ReachedPrefix is what every answer to prober's probes starts with; the
// answering rank follows it.
func ReachedPrefix(job string, prober int) string { return fmt.Sprintf(backT, job, prober) + "." }

// ReachedAll is prober's subscription to the answers to its probes.
func ReachedAll(job string, prober int) string { return fmt.Sprintf(backT, job, prober) + ".*" }

// Multicast is the subject of the frames rank src sends to every other
// rank with one publish.
func Multicast(job string, src int) string { return fmt.Sprintf(mcastT, job, src) }

// MulticastPrefix is what every multicast subject starts with; the sender
// follows it.
func MulticastPrefix(job string) string { return Root + "." + job + ".mc." }

// MulticastAll is every rank's subscription to the others' multicasts.
func MulticastAll(job string) string { return fmt.Sprintf(wildT, job, "mc") }

// All matches every subject of the job.
func All(job string) string { return fmt.Sprintf(allT, job) }

// Sender parses the rank that ends subj after prefix: a decimal number in
// [0, size), with no sign or leading zero. It reports false for anything
// else.
func Sender(subj, prefix string, size int) (int, bool) {
	s, ok := strings.CutPrefix(subj, prefix)
	if !ok || s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n >= size {
		return 0, false
	}
	return n, true
}

// Permissions returns the subjects that rank of a job may publish to and
// subscribe to, as a server's permissions (nats-server's
// SubjectPermission.Allow, or a user JWT's Pub.Allow and Sub.Allow):
// publish only subjects that name rank as the sender (its frames to every
// inbox, its multicasts, its Abort, its start-up request, its start-up
// probes and its answers to others' probes, the news of its own death;
// rank 0 also answers start-up requests), subscribe only to its own inbox,
// its own replies, the probes of it and the answers to its own probes, and
// the job's shared subjects (multicast, Abort, deaths; rank 0 also the
// start-up requests).
func Permissions(job string, rank int) (pub, sub []string) {
	pub = []string{
		fmt.Sprintf(anyT, job, rank),
		Multicast(job, rank),
		Abort(job, rank),
		Died(job, rank),
		Ready(job, rank),
		Root + "." + job + ".ctl.reach.*." + strconv.Itoa(rank),
		Root + "." + job + ".ctl.reached.*." + strconv.Itoa(rank),
	}
	sub = []string{
		InboxAll(job, rank),
		MulticastAll(job),
		AbortAll(job),
		DiedAll(job),
		fmt.Sprintf(replyO, job, rank),
		ReachAll(job, rank),
		ReachedAll(job, rank),
	}
	if rank == 0 {
		pub = append(pub, fmt.Sprintf(replyA, job))
		sub = append(sub, ReadyAll(job))
	}
	return pub, sub
}

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

// ParseInbox returns the job, receiving rank and sending rank of an inbox
// subject.
func ParseInbox(subj string) (job string, dst, src int, err error) {
	rest, ok := strings.CutPrefix(subj, Root+".")
	if !ok {
		return "", 0, 0, fmt.Errorf("subject %q is not under %s", subj, Root)
	}
	tok := strings.Split(rest, ".")
	if len(tok) != 4 || tok[1] != "p2p" {
		return "", 0, 0, fmt.Errorf("subject %q is not an inbox", subj)
	}
	dst, err1 := strconv.Atoi(tok[2])
	src, err2 := strconv.Atoi(tok[3])
	if err1 != nil || err2 != nil || dst < 0 || src < 0 {
		return "", 0, 0, fmt.Errorf("subject %q: bad rank", subj)
	}
	return tok[0], dst, src, nil
}
