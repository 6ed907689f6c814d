package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gorun-hpc/gorun/internal/subject"
	"github.com/gorun-hpc/gorun/internal/testing/wait"
)

// operatorServer starts a nats-server in operator (JWT) mode, as a site
// runs a shared one: an operator, and one account with a signing key, in a
// memory resolver. It returns the server's URL, a file holding the signing
// key's seed (mode 0600: what an operator hands a team) and the account's
// public key.
func operatorServer(t *testing.T) (url, keyFile, account string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "site"
	akp, err := nkeys.CreateAccount()
	must(err)
	apub, _ := akp.PublicKey()
	skp, err := nkeys.CreateAccount()
	must(err)
	spub, _ := skp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Name = "team"
	ac.SigningKeys.Add(spub)
	ajwt, err := ac.Encode(okp)
	must(err)
	res := &server.MemAccResolver{}
	must(res.Store(apub, ajwt))
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: res,
	})
	must(err)
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("operator-mode server not ready")
	}
	seed, _ := skp.Seed()
	keyFile = filepath.Join(t.TempDir(), "team.nk")
	must(os.WriteFile(keyFile, seed, 0o600))
	return ns.ClientURL(), keyFile, apub
}

// rankEnv is the launch contract of every running rankprog process whose
// arguments end with suffix: job id -> rank -> its environment.
func rankEnv(suffix string) map[string]map[int]map[string]string {
	out := map[string]map[int]map[string]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if !strings.HasSuffix(strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "), suffix) {
			continue
		}
		env, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		m := map[string]string{}
		for _, kv := range strings.Split(string(env), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "GORUN_") {
				m[k] = v
			}
		}
		r, err := strconv.Atoi(m["GORUN_RANK"])
		if err != nil || m["GORUN_JOB_ID"] == "" {
			continue
		}
		if out[m["GORUN_JOB_ID"]] == nil {
			out[m["GORUN_JOB_ID"]] = map[int]map[string]string{}
		}
		out[m["GORUN_JOB_ID"]][r] = m
	}
	return out
}

// TestSharedServerIsolation: two jobs on one operator-mode server, each
// with users gorun minted from the team's signing key. A process holding
// rank 1 of job A's credentials (taken from that rank's environment) can
// neither read job B's subjects nor another rank's inbox of its own job,
// publish into job B or as another rank, nor take part in job B's
// start-up: the server refuses each; both jobs' results are right.
func TestSharedServerIsolation(t *testing.T) {
	skipShort(t)
	needLinux(t, "reads the ranks' environments in /proc")
	url, keyFile, account := operatorServer(t)
	const suffix = "rankprog mpisum 3000"
	args := []string{"-n", "3", "--nats", url, "--nats-account-key", keyFile, "--nats-account", account, bin.rankprog, "mpisum", "3000"}
	a := startJob(t, nil, args...)
	b := startJob(t, nil, args...)
	a.waitLines("ready", 3, time.Minute)
	b.waitLines("ready", 3, time.Minute)

	jobs := rankEnv(suffix)
	if len(jobs) != 2 {
		t.Fatalf("found %d jobs' ranks, want 2", len(jobs))
	}
	var ids []string
	for id, ranks := range jobs {
		if len(ranks) != 3 {
			t.Fatalf("job %s: %d ranks found, want 3", id, len(ranks))
		}
		seen := map[string]bool{}
		for r, env := range ranks {
			c := env["GORUN_NATS_CREDS"]
			if !strings.Contains(c, "BEGIN NATS USER JWT") || seen[c] {
				t.Fatalf("job %s rank %d: credentials are not a user of its own", id, r)
			}
			seen[c] = true
			if env["GORUN_NATS_TOKEN"] != "" {
				t.Errorf("job %s rank %d has a token", id, r)
			}
		}
		ids = append(ids, id)
	}
	jobA, jobB := ids[0], ids[1]
	creds := jobs[jobA][1]["GORUN_NATS_CREDS"]
	tok, err := jwt.ParseDecoratedJWT([]byte(creds))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := jwt.ParseDecoratedUserNKey([]byte(creds))
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()

	var mu sync.Mutex
	var errs []string
	nc, err := nats.Connect(url, nats.UserJWTAndSeed(tok, string(seed)), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		errs = append(errs, err.Error())
		mu.Unlock()
	}))
	if err != nil {
		t.Fatalf("job A's rank 1 credentials do not connect: %v", err)
	}
	defer nc.Close()
	denySub := []string{
		subject.All(jobB),                   // all of job B
		subject.InboxAll(jobB, 0),           // job B's rank 0 inbox
		subject.ReadyAll(jobB),              // job B's start-up requests, to answer them
		subject.InboxAll(jobA, 0),           // another rank's inbox of job A
		subject.ReadyAll(jobA),              // rank 0's side of job A's start-up
		subject.ReplyPrefix(jobA, 2) + ".>", // another rank's replies
	}
	denyPub := []string{
		subject.Inbox(jobB, 0, 1),           // into job B, as its rank 1
		subject.Inbox(jobA, 2, 0),           // into job A, as its rank 0
		subject.Multicast(jobA, 0),          // job A's multicast, as rank 0
		subject.Abort(jobB, 1),              // abort job B
		subject.ReplyPrefix(jobB, 1) + ".x", // answer job B's start-up
		subject.Ready(jobB, 1),              // join job B's start-up
	}
	for _, s := range denySub {
		if _, err := nc.SubscribeSync(s); err != nil {
			t.Fatal(err)
		}
	}
	allowed, _ := nc.SubscribeSync(subject.MulticastAll(jobA)) // its own job's shared subject
	_ = allowed
	for _, s := range denyPub {
		nc.Publish(s, []byte("forged"))
	}
	nc.Flush()
	wait.For(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(errs) >= len(denySub)+len(denyPub)
	})
	mu.Lock()
	all := strings.ToLower(strings.Join(errs, "\n"))
	mu.Unlock()
	for _, s := range denySub {
		if !strings.Contains(all, strings.ToLower(`permissions violation for subscription to "`+s+`"`)) {
			t.Errorf("the server let job A's rank 1 subscribe to %s", s)
		}
	}
	for _, s := range denyPub {
		if !strings.Contains(all, strings.ToLower(`permissions violation for publish to "`+s+`"`)) {
			t.Errorf("the server let job A's rank 1 publish to %s", s)
		}
	}
	if strings.Contains(all, strings.ToLower(subject.MulticastAll(jobA))) {
		t.Errorf("job A's rank 1 may not subscribe to its job's multicast: %s", all)
	}

	for name, j := range map[string]*job{"A": a, "B": b} {
		if code := j.wait(time.Minute); code != 0 || len(withPrefix(j.lines(), "sum 3")) != 1 {
			t.Errorf("job %s: exit %d, stdout %q; stderr:\n%s", name, code, j.lines(), j.errText())
		}
		if strings.Contains(j.errText(), "not isolated") {
			t.Errorf("job %s: warned it is not isolated, with a signing key", name)
		}
	}
}
