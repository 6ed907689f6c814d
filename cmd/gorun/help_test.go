package main

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/internal/contract"
	"github.com/gorun-hpc/gorun/launcher"
)

// gorunEnv are the variables gorun itself reads (not given to ranks).
var gorunEnv = []string{"GORUN_SSH_OPTS", "GORUN_NATS_TOKEN"}

// TestHelpNamesContract: the variables that gorun --help and the README
// say ranks get are the launch contract's (internal/contract), and the
// help names every one of them: help and contract stay in step.
func TestHelpNamesContract(t *testing.T) {
	var cfg launcher.Config
	var v bool
	var b bytes.Buffer
	usage(&b, newFlagSet(&cfg, &v))
	help := b.String()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`GORUN_[A-Z_]*[A-Z]`)
	for _, doc := range []struct{ what, text string }{{"gorun --help", help}, {"README.md", string(readme)}} {
		for _, v := range name.FindAllString(doc.text, -1) {
			if !slices.Contains(contract.Env, v) && !slices.Contains(gorunEnv, v) {
				t.Errorf("%s names %s, which is not in the launch contract (internal/contract.Env)", doc.what, v)
			}
		}
	}
	for _, v := range contract.Env {
		if !strings.Contains(help, v) {
			t.Errorf("gorun --help does not name %s, a variable of the launch contract", v)
		}
	}
}
