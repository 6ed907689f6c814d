package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var failprog lazyProg

// blameModes are failprog's ways to fail: what gorun must say of the rank
// (%d: its rank), and its exit status.
var blameModes = []struct {
	name, words string
	code        int
}{
	{"panic", "after a panic: boom on rank %d", 2},
	{"fatal", "exited with status 1: rank %d: fatal input", 1},
	{"error", "exited with status 1: rank %d: bad input", 1},
}

// TestBlame: a program in the README's shape fails on rank k (a panic,
// log.Fatal, or an error returned to main's log.Fatal) while the others
// are in a collective. The deferred Close of a panicking or erring rank
// says bye, and its peers fail with ErrPeerLost, often before it has
// printed a word: gorun must still name rank k, with its own exit status
// and its panic message or error text, and never a bystander.
func TestBlame(t *testing.T) {
	prog := failprog.build(t, "failprog", "./testdata/failprog")
	runs := 3
	if testing.Short() {
		runs = 1
	}
	for _, mode := range blameModes {
		for _, k := range []int{0, 2, 3} {
			t.Run(fmt.Sprintf("%s/rank%d", mode.name, k), func(t *testing.T) {
				for range runs {
					j := startJob(t, nil, "-n", "4", prog, mode.name, fmt.Sprint(k))
					checkBlame(t, j, k, mode.code, fmt.Sprintf(mode.words, k))
				}
			})
		}
	}
}

// checkBlame checks that j exits with code, and that gorun's one line
// names rank k and says words.
func checkBlame(t *testing.T, j *job, k, code int, words string) {
	t.Helper()
	if got := j.wait(30 * time.Second); got != code {
		t.Errorf("exit %d, want %d; stderr:\n%s", got, code, j.errText())
	}
	got := gorunLines(j.errText())
	if len(got) != 1 || !strings.HasPrefix(got[0], fmt.Sprintf("gorun: rank %d (pid ", k)) || !strings.Contains(got[0], words) {
		t.Errorf("gorun said %q; want one line naming rank %d and %q; stderr:\n%s", got, k, words, j.errText())
	}
}

// TestHostsBlame: TestBlame's failures on two namespace hosts (two ranks
// each): the rank that failed is named, with its host, whichever host its
// bystanders are on.
func TestHostsBlame(t *testing.T) {
	e := newHosts(t, 2, 2)
	prog := failprog.build(t, "failprog", "./testdata/failprog")
	for _, mode := range blameModes {
		for _, k := range []int{0, 2, 3} {
			t.Run(fmt.Sprintf("%s/rank%d", mode.name, k), func(t *testing.T) {
				j := startJob(t, nil, e.args("-n", "4", "--hostfile", e.hostfile, prog, mode.name, fmt.Sprint(k))...)
				checkBlame(t, j, k, mode.code, fmt.Sprintf(mode.words, k))
				if host := e.Hosts[k/2].Addr; !strings.Contains(j.errText(), "on host "+host+")") {
					t.Errorf("gorun does not name rank %d's host %s:\n%s", k, host, j.errText())
				}
			})
		}
	}
}
