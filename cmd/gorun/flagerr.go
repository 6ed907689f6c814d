package main

// Command-line mistakes in gorun's words. The standard flag package says
// "flag provided but not defined: -tagoutput" and "invalid value "5" for
// flag -timeout: parse error"; checkArgs finds the same mistakes first and
// says which flag was meant and what a value should look like.

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// checkArgs walks the flags at the front of args as fs.Parse would (up to
// the first argument that is not a flag, or "--") and returns an error for
// the first one Parse would refuse: an unknown flag (with the closest
// defined one, if any is close), a missing value, or a value of the wrong
// kind (with what it should look like). Each error shows the flag as it
// was typed. Mistakes it does not recognise are left to fs.Parse.
func checkArgs(fs *flag.FlagSet, args []string) error {
	for i := 0; i < len(args); i++ {
		s := args[i]
		if len(s) < 2 || s[0] != '-' || s == "--" {
			return nil
		}
		typed, value, hasValue := strings.Cut(s, "=")
		name := strings.TrimPrefix(strings.TrimPrefix(typed, "-"), "-")
		if name == "" || name[0] == '-' {
			return nil // bad syntax: fs.Parse says so
		}
		f := fs.Lookup(name)
		if f == nil {
			if name == "help" || name == "h" {
				return nil
			}
			if near := closestFlag(fs, name); near != "" {
				return fmt.Errorf("unknown flag %s: did you mean %s?", typed, near)
			}
			return fmt.Errorf("unknown flag %s", typed)
		}
		kind := flagKind(f)
		if kind == "bool" {
			if hasValue {
				if _, err := strconv.ParseBool(value); err != nil {
					return fmt.Errorf("%s=%s: not true or false", typed, value)
				}
			}
			continue
		}
		shown := typed + "=" + value
		if !hasValue {
			if i+1 == len(args) {
				return fmt.Errorf("%s needs a value: %s", typed, valueHint(kind, f))
			}
			i++
			value = args[i]
			shown = typed + " " + value
		}
		switch kind {
		case "duration":
			if _, err := time.ParseDuration(value); err != nil {
				if _, ferr := strconv.ParseFloat(value, 64); ferr == nil {
					return fmt.Errorf("%s: a duration needs a unit: %ss, %sm or %sh", shown, value, value, value)
				}
				return fmt.Errorf("%s: not a duration: %s", shown, valueHint(kind, f))
			}
		case "int":
			if _, err := strconv.ParseInt(value, 0, strconv.IntSize); err != nil {
				return fmt.Errorf("%s: not a whole number", shown)
			}
		case "seconds":
			if _, err := parseSeconds(value); err != nil {
				return fmt.Errorf("%s: %v", shown, err)
			}
		}
	}
	return nil
}

// flagKind is the kind of value f takes: "bool", "duration", "int" or
// "string" (anything else: every value parses).
func flagKind(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return "bool"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "string"
	}
	switch g.Get().(type) {
	case time.Duration:
		return "duration"
	case secondsValue:
		return "seconds"
	case int:
		return "int"
	}
	return "string"
}

// valueHint says what a value of kind for f looks like: for a string,
// the name --help gives it (FILE, URL, VAR=VALUE), or the example it
// gives (--map-by slot).
func valueHint(kind string, f *flag.Flag) string {
	switch kind {
	case "duration":
		return "a number with a unit, such as 90s, 5m or 1h30m"
	case "int":
		return "a whole number"
	case "seconds":
		return "seconds (30) or a duration (30s, 5m)"
	}
	name, _ := flag.UnquoteUsage(f)
	switch {
	case name == "" || name == "value" || name == "string":
		return "a value"
	case strings.ToLower(name) == name: // an example, as --map-by's slot
		return "such as " + name
	}
	return name
}

// closestFlag is the defined flag nearest to name, as it is written in
// gorun --help ("--tag-output", "-n"), or "" when none is near: a flag
// whose name differs only in case, the one flag that name begins (three
// letters or more), or the flag at the smallest edit distance if that is
// at most a third of name's length. Ties go to the flag first in --help's
// (alphabetical) order.
func closestFlag(fs *flag.FlagSet, name string) string {
	lower := strings.ToLower(name)
	best, bestDist := "", len(name)/3+1
	var prefixed []string
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(lower, strings.ToLower(f.Name))
		if d < bestDist {
			best, bestDist = f.Name, d
		}
		if len(name) >= 3 && strings.HasPrefix(f.Name, lower) {
			prefixed = append(prefixed, f.Name)
		}
	})
	if best == "" && len(prefixed) == 1 {
		best = prefixed[0]
	}
	if best == "" {
		return ""
	}
	return dashed(best)
}

// dashed is a flag's name as gorun's help writes it: one dash for the
// one-letter flags and -np (as mpirun writes them), two for the others.
// (Either form works on the command line.)
func dashed(name string) string {
	if len(name) == 1 || name == "np" {
		return "-" + name
	}
	return "--" + name
}

// editDistance is the Levenshtein distance between a and b: the fewest
// single-byte insertions, deletions and substitutions that turn a into b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
