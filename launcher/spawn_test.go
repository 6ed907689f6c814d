package launcher

import (
	"slices"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/bus"
	"github.com/gorun-hpc/gorun/internal/contract"
)

// A rank's environment carries the job's settings that it needs and only
// those: a --nats server's TLS files as given, its own credentials and no
// other rank's, the shared token.
func TestContractEnv(t *testing.T) {
	j := jobInfo{
		ID: "job", Token: "tok",
		TLS:   bus.TLSFiles{CA: "/etc/ca.pem", Cert: "/etc/c.pem", Key: "/etc/k.pem"},
		Creds: map[int]string{0: "seed0", 1: "seed1"},
	}
	env := j.ContractEnv(Proc{Rank: 1, LocalRank: 0, LocalSize: 1}, 2, "nats://h:1")
	for _, want := range []string{
		contract.Rank + "=1", contract.Size + "=2", contract.JobID + "=job", contract.NATSURL + "=nats://h:1",
		contract.NATSToken + "=tok", contract.NATSCreds + "=seed1",
		contract.NATSCA + "=/etc/ca.pem", contract.NATSCert + "=/etc/c.pem", contract.NATSKey + "=/etc/k.pem",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("rank 1's environment %q lacks %s", env, want)
		}
	}
	if slices.Contains(env, contract.NATSCreds+"=seed0") {
		t.Errorf("rank 1's environment %q holds rank 0's credentials", env)
	}
	for _, v := range (jobInfo{ID: "job"}).ContractEnv(Proc{}, 1, "nats://h:1") {
		if name, _, _ := strings.Cut(v, "="); name == contract.NATSCA || name == contract.NATSToken || name == contract.NATSCreds {
			t.Errorf("a job without them sets %s", v)
		}
	}
}
