package launcher

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GorunSource finds the clone these tests run in, from the file name the
// compiler recorded.
func TestPrepareGorunSource(t *testing.T) {
	src, err := GorunSource()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Abs("..")
	if src != want {
		t.Fatalf("GorunSource() = %s, want %s", src, want)
	}

	// Set at link time (a -trimpath build), to a directory that is gone
	// or is not gorun's: one clear error that says what to do.
	defer func(old string) { sourceDir = old }(sourceDir)
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644)
	for dir, want := range map[string]string{
		filepath.Join(other, "gone"): "is gone",
		other:                        `is not the gorun source (its go.mod is module "example.com/other")`,
	} {
		sourceDir = dir
		_, err := findGorunSource()
		if err == nil || !strings.Contains(err.Error(), dir+")") && !strings.Contains(err.Error(), dir+" ") ||
			!strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "make install") {
			t.Errorf("source %s: %v; want an error naming it, saying it %s, and how to rebuild gorun", dir, err, want)
		}
	}
}

func TestPrepareParseGoMod(t *testing.T) {
	m := parseGoMod([]byte(`// a comment
module example.com/x // trailing

go 1.22.0

require github.com/a/b v1.2.3
require (
	"github.com/gorun-hpc/gorun" v0.1.0 // indirect
	github.com/c/d v0.0.1
)

replace github.com/a/b v1.2.3 => ../b
replace (
	github.com/c/d => github.com/e/f v1.0.0
)
`))
	if m.module != "example.com/x" || m.goVer != "1.22.0" {
		t.Errorf("module %q go %q", m.module, m.goVer)
	}
	if m.require[GorunModule] != "v0.1.0" || m.require["github.com/a/b"] != "v1.2.3" || m.require["github.com/c/d"] != "v0.0.1" || len(m.require) != 3 {
		t.Errorf("require %v", m.require)
	}
	if !m.replaced["github.com/a/b"] || !m.replaced["github.com/c/d"] || len(m.replaced) != 2 {
		t.Errorf("replaced %v", m.replaced)
	}
}

// planBuild: gorun supplies its packages only to a program that imports
// them and cannot have them otherwise.
func TestPrepareBuildPlan(t *testing.T) {
	t.Setenv("GOWORK", "")
	cache := t.TempDir() // a module cache that holds gorun v1.0.0
	if err := os.MkdirAll(filepath.Join(cache, "github.com/gorun-hpc/gorun@v1.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cache, "github.com/gorun-hpc/gorun@v1.0.0/go.mod"), []byte("module "+GorunModule+"\n"), 0o644)
	t.Setenv("GOMODCACHE", cache)

	const usesGorun = "package main\n\nimport _ \"github.com/gorun-hpc/gorun/mpi\"\n\nfunc main() {}\n"
	const stdOnly = "package main\n\nimport _ \"fmt\"\n\nfunc main() {}\n"
	const mod = "module example.com/own\n\ngo 1.26\n"
	for _, tc := range []struct {
		name  string
		files map[string]string // in a new directory; "sub/" files are the program's
		want  string
	}{
		{"no go.mod, standard library only", map[string]string{"main.go": stdOnly}, asIs},
		{"no go.mod, gorun's packages", map[string]string{"main.go": usesGorun}, tempMod},
		{"go.mod, gorun's packages, no require", map[string]string{"go.mod": mod, "main.go": usesGorun}, modfileOf},
		{"go.mod, standard library only", map[string]string{"go.mod": mod, "main.go": stdOnly}, asIs},
		{"go.mod requires an unpublished version", map[string]string{"go.mod": mod + "require " + GorunModule + " v0.1.0\n", "main.go": stdOnly}, modfileOf},
		{"go.mod requires a version in the module cache", map[string]string{"go.mod": mod + "require " + GorunModule + " v1.0.0\n", "main.go": usesGorun}, asIs},
		{"go.mod replaces gorun", map[string]string{"go.mod": mod + "require " + GorunModule + " v0.1.0\nreplace " + GorunModule + " => ../gorun\n", "main.go": usesGorun}, asIs},
		{"a parent's go.mod", map[string]string{"go.mod": mod, "sub/main.go": usesGorun}, modfileOf},
		{"a go.work", map[string]string{"go.work": "go 1.26\n\nuse ./sub\n", "sub/go.mod": mod, "sub/main.go": usesGorun}, asIs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			prog := dir
			var files []string
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				if strings.HasSuffix(name, ".go") {
					prog = filepath.Dir(p)
					files = append(files, filepath.Base(p))
				}
			}
			plan, err := planBuild(prog, files)
			if err != nil {
				t.Fatal(err)
			}
			if plan.how != tc.want {
				t.Errorf("planBuild: %s, want %s", plan.how, tc.want)
			}
		})
	}
	plan, err := planBuild(filepath.Join(mustAbs(t, ".."), "examples", "hello"), []string{"main.go"})
	if err != nil || plan.how != asIs {
		t.Errorf("examples/hello in the clone: %s, %v; want as is", plan.how, err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// A program without a go.mod, and one whose go.mod cannot resolve gorun,
// are built against the clone, offline; nothing is written in their
// directories; the programs run (alone, a world of one).
func TestPrepareOwnProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs: skipped with -short")
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "")
	const prog = `package main

import (
	"context"
	"fmt"

	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	world, err := mpi.Init(context.Background())
	if err != nil {
		panic(err)
	}
	defer world.Close()
	fmt.Println("size", world.Size())
}
`
	for name, gomod := range map[string]string{
		"no go.mod":           "",
		"unresolvable go.mod": "module example.com/own\n\ngo 1.22\n\nrequire github.com/gorun-hpc/gorun v0.1.0\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "main.go"), []byte(prog), 0o644)
			if gomod != "" {
				os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644)
			}
			var stderr strings.Builder
			p, err := PrepareProgram(context.Background(), dir, &stderr)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			defer p.Remove()
			out, err := exec.Command(p.Path).Output()
			if err != nil || string(out) != "size 1\n" {
				t.Errorf("the program printed %q (%v), want size 1", out, err)
			}
			ents, _ := os.ReadDir(dir)
			if want := 1 + min(len(gomod), 1); len(ents) != want {
				t.Errorf("%d files in the program's directory afterwards, want %d", len(ents), want)
			}
			if gomod != "" {
				if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); string(b) != gomod {
					t.Errorf("go.mod changed:\n%s", b)
				}
			}
		})
	}
}

// TestPrepareStatic: a program gorun builds links statically where it has
// no C of its own (no dynamic loader to run at each rank's start), even
// though it uses the name resolver and user lookup, which link libc by
// default where cgo is on; tags the user's GOFLAGS choose are kept.
func TestPrepareStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs: skipped with -short")
	}
	t.Setenv("CGO_ENABLED", "1")
	t.Setenv("GOFLAGS", "")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/static\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(`package main

import (
	"fmt"
	"net"
	"os/user"
)

var tag = "none"

func main() {
	_, err := user.Current()
	fmt.Println(tag, net.ParseIP("127.0.0.1") != nil, err == nil)
}
`), 0o644)
	os.WriteFile(filepath.Join(dir, "own.go"), []byte("//go:build owntag\n\npackage main\n\nfunc init() { tag = \"own\" }\n"), 0o644)
	build := func() (string, bool) {
		t.Helper()
		var stderr strings.Builder
		p, err := PrepareProgram(context.Background(), dir, &stderr)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		defer p.Remove()
		f, err := elf.Open(p.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		dynamic := false
		for _, prog := range f.Progs {
			dynamic = dynamic || prog.Type == elf.PT_INTERP
		}
		out, err := exec.Command(p.Path).Output()
		if err != nil {
			t.Fatalf("the program failed: %v", err)
		}
		return string(out), dynamic
	}
	if out, dynamic := build(); dynamic || out != "none true true\n" {
		t.Errorf("built by default: printed %q, dynamically linked %v; want \"none true true\", static", out, dynamic)
	}
	t.Setenv("GOFLAGS", "-tags=owntag")
	if out, _ := build(); out != "own true true\n" {
		t.Errorf("built with GOFLAGS=-tags=owntag: printed %q, want the user's tag kept", out)
	}
}

// InitProject writes a project that builds offline, and refuses to write
// over one.
func TestPrepareInitProject(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program: skipped with -short")
	}
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOWORK", "")
	dir := filepath.Join(t.TempDir(), "a b", "my job")
	written, err := InitProject(dir)
	if err != nil || len(written) != 3 {
		t.Fatalf("InitProject: %v, %v", written, err)
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.HasPrefix(string(mod), "module my-job\n") {
		t.Errorf("go.mod:\n%s", mod)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(t.TempDir(), "job"), ".")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in the new project: %v\n%s", err, out)
	}
	if _, err := InitProject(dir); err == nil || !strings.Contains(err.Error(), "go.mod already exists") {
		t.Errorf("InitProject over a project: %v, want an error naming go.mod", err)
	}
	os.Remove(filepath.Join(dir, "go.mod"))
	os.Remove(filepath.Join(dir, "go.sum"))
	if _, err := InitProject(dir); err == nil || !strings.Contains(err.Error(), "main.go already exists") {
		t.Errorf("InitProject over a main.go: %v, want an error naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		t.Errorf("InitProject wrote go.mod beside an existing main.go")
	}
}
