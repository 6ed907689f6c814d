package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/gorun-hpc/gorun/launcher"
)

// gorunFlags is gorun's whole flag set, as the command defines it.
func gorunFlags() *flag.FlagSet {
	cfg := launcher.DefaultConfig()
	var showVersion bool
	fs := newFlagSet(&cfg, &showVersion)
	addHostFlags(fs, &cfg)
	return fs
}

func TestClosestFlag(t *testing.T) {
	fs := gorunFlags()
	for _, tc := range []struct{ typed, want string }{
		{"tagoutput", "--tag-output"},
		{"tag_output", "--tag-output"},
		{"timout", "--timeout"},
		{"Timeout", "--timeout"},
		{"N", "-n"},
		{"nq", ""}, // one letter off a two-letter name is too far to guess
		{"hostfle", "--hostfile"},
		{"over", "--oversubscribe"}, // the one flag it begins
		{"ssh", ""},                 // begins --ssh-opts and --ssh-timeout: no guess
		{"mapby", "--map-by"},
		{"c", ""},
		{"frobnicate", ""},
	} {
		if got := closestFlag(fs, tc.typed); got != tc.want {
			t.Errorf("closestFlag(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"tagoutput", "tag-output", 1},
		{"kitten", "sitting", 3}, {"timeout", "timeout", 0}, {"np", "n", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// checkArgs says nothing about what fs.Parse takes, and names the first
// mistake otherwise, as typed.
func TestCheckArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for no error
	}{
		{[]string{"-n", "2", "--tag-output", "--timeout", "5m", "./prog", "--tagoutput", "-timeout", "5"}, ""},
		{[]string{"--tag-output=false", "-v", "--ssh-timeout=3s", "-x", "A=1", "prog"}, ""},
		{[]string{"--", "--tagoutput"}, ""},
		{[]string{"--help"}, ""},
		{[]string{"-h"}, ""},
		{[]string{"---x"}, ""}, // bad syntax is fs.Parse's to report
		{[]string{"-n", "2", "--tagoutput", "prog"}, "unknown flag --tagoutput: did you mean --tag-output?"},
		{[]string{"--timeout", "5", "prog"}, "--timeout 5: a duration needs a unit: 5s, 5m or 5h"},
		{[]string{"--timeout=90", "prog"}, "--timeout=90: a duration needs a unit: 90s, 90m or 90h"},
		{[]string{"--timeout", "soon", "prog"}, "--timeout soon: not a duration: a number with a unit, such as 90s, 5m or 1h30m"},
		{[]string{"-n", "2", "--timeout"}, "--timeout needs a value: a number with a unit, such as 90s, 5m or 1h30m"},
		{[]string{"-np", "x2", "prog"}, "-np x2: not a whole number"},
		{[]string{"--hang-report", "45", "--hang-report=90s", "prog"}, ""},
		{[]string{"--hang-report", "soon", "prog"}, "--hang-report soon: want seconds (30) or a duration (30s, 5m)"},
		{[]string{"--hang-report=-3", "prog"}, "--hang-report=-3: must not be negative"},
		{[]string{"--hang-report"}, "--hang-report needs a value: seconds (30) or a duration (30s, 5m)"},
		{[]string{"--trace-size", "many", "prog"}, "--trace-size many: not a whole number"},
		{[]string{"--copy=yes", "prog"}, "--copy=yes: not true or false"},
		{[]string{"--frobnicate", "prog"}, "unknown flag --frobnicate"},
		{[]string{"-x"}, "-x needs a value: VAR=VALUE"},
		{[]string{"--hostfile"}, "--hostfile needs a value: FILE"},
		{[]string{"--map-by"}, "--map-by needs a value: such as slot"},
	} {
		err := checkArgs(gorunFlags(), tc.args)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("checkArgs(%q) = %q, want %q", tc.args, got, tc.want)
		}
		// Whatever checkArgs lets through, fs.Parse takes (but bad syntax).
		if err == nil && !strings.HasPrefix(tc.args[0], "---") {
			if perr := gorunFlags().Parse(tc.args); perr != nil && perr != flag.ErrHelp {
				t.Errorf("checkArgs(%q) let through what fs.Parse refuses: %v", tc.args, perr)
			}
		}
		// What checkArgs refuses, fs.Parse refuses too: it never rejects a good command line.
		if err != nil {
			if perr := gorunFlags().Parse(tc.args); perr == nil {
				t.Errorf("checkArgs(%q) refused what fs.Parse takes", tc.args)
			}
		}
	}
}
