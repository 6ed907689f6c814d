package examples

import (
	"os"
	"strings"
	"testing"
)

// The README's table of examples has a line for every example here, and
// names none that is not.
func TestREADMEListsEveryExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	_, table, ok := strings.Cut(string(readme), "| example | what it shows |")
	if !ok {
		t.Fatal(`README.md has no "| example | what it shows |" table`)
	}
	for _, l := range strings.Split(table, "\n")[2:] {
		name, ok := strings.CutPrefix(l, "| `")
		if !ok {
			break
		}
		name, _, _ = strings.Cut(name, "`")
		name = strings.TrimPrefix(name, "examples/")
		listed[name] = true
	}
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, err := os.Stat(e.Name() + "/main.go"); err != nil {
			continue
		}
		if !listed[e.Name()] {
			t.Errorf("examples/%s is not in the README's table of examples", e.Name())
		}
		delete(listed, e.Name())
	}
	for name := range listed {
		t.Errorf("the README's table lists %s, which is not in examples/", name)
	}
}
