package main

// A newcomer's own program, outside the clone: gorun builds it against the
// gorun source it was built from (the module is not published), offline
// (GOPROXY=off: the module cache that builds gorun is enough), without
// writing the program's files.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// buildTimeout bounds a job that builds a program first, on a busy machine.
const buildTimeout = 3 * time.Minute

// sumProg is a one-file program that uses mpi and collectives: every rank
// gives rank+1 to an Allreduce and prints the total, 10 for 4 ranks.
const sumProg = `package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	ctx := context.Background()
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer world.Close()
	sum, err := collectives.Allreduce(ctx, world, []int{world.Rank() + 1}, collectives.Sum)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("rank %d of %d: sum %d\n", world.Rank(), world.Size(), sum[0])
}
`

// runIn runs gorun with args in dir, offline, and returns its exit status,
// stdout lines and stderr.
func runIn(t *testing.T, dir string, args ...string) (int, []string, string) {
	t.Helper()
	t.Setenv("GOPROXY", "off") // no module may be fetched: gorun is not published
	cmd := exec.Command(bin.gorun, args...)
	cmd.Dir = dir
	j := startCmd(t, cmd, nil)
	code := j.wait(buildTimeout)
	return code, j.lines(), j.errText()
}

// writeFiles writes name: content under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// assertFiles fails unless dir holds exactly files, unchanged.
func assertFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != len(files) {
		t.Errorf("%s holds %q afterwards: gorun wrote in the program's directory", dir, names)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s changed: %q, want %q (%v)", name, got, want, err)
		}
	}
}

// assertSums checks that n ranks printed the total of 1..n.
func assertSums(t *testing.T, out []string, n int) {
	t.Helper()
	var want []string
	for r := range n {
		want = append(want, fmt.Sprintf("rank %d of %d: sum %d", r, n, n*(n+1)/2))
	}
	got := slices.Sorted(slices.Values(out))
	if !slices.Equal(got, want) {
		t.Fatalf("stdout %q, want %q", got, want)
	}
}

// One .go file in a new directory, no go.mod: gorun -n 4 ./main.go.
func TestOwnProgramFile(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	files := map[string]string{"main.go": sumProg}
	writeFiles(t, dir, files)
	code, out, stderr := runIn(t, dir, "-n", "4", "./main.go")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	assertSums(t, out, 4)
	if stderr != "" {
		t.Errorf("stderr %q: want nothing (no go command chatter)", stderr)
	}
	assertFiles(t, dir, files)
}

// A program directory with its own go.mod that cannot resolve gorun: one
// that requires a version no proxy has, and one (go mod init, nothing
// more) that does not require it. The go.mod is copied, never edited.
func TestOwnProgramModule(t *testing.T) {
	skipShort(t)
	for name, gomod := range map[string]string{
		"requires-unpublished": "module example.com/own\n\ngo 1.22\n\nrequire github.com/gorun-hpc/gorun v0.1.0\n",
		"no-require":           "module example.com/own\n\ngo 1.26\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"go.mod": gomod, "main.go": sumProg}
			writeFiles(t, dir, files)
			code, out, stderr := runIn(t, dir, "-n", "3", ".")
			if code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr)
			}
			assertSums(t, out, 3)
			if stderr != "" {
				t.Errorf("stderr %q: want nothing (no go command chatter)", stderr)
			}
			assertFiles(t, dir, files)
		})
	}
}

// gorun init myjob && cd myjob && gorun -n 2 .; a second gorun init
// there refuses, and changes nothing.
func TestOwnProgramInit(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	code, out, stderr := runIn(t, dir, "init", "myjob")
	if code != 0 {
		t.Fatalf("gorun init myjob: exit %d; stderr:\n%s", code, stderr)
	}
	if !slices.ContainsFunc(out, func(l string) bool { return strings.Contains(l, "cd myjob && gorun -n 4 .") }) {
		t.Errorf("gorun init's stdout %q does not say how to run the project", out)
	}
	job := filepath.Join(dir, "myjob")
	files := map[string]string{}
	for _, n := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(job, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = string(b)
	}
	if !strings.HasPrefix(files["go.mod"], "module myjob\n") || !strings.Contains(files["go.mod"], "replace github.com/gorun-hpc/gorun => ") {
		t.Errorf("go.mod:\n%s\nwant module myjob, with a replace of gorun", files["go.mod"])
	}

	code, out, stderr = runIn(t, job, "-n", "2", ".")
	if code != 0 {
		t.Fatalf("gorun -n 2 . in myjob: exit %d; stderr:\n%s", code, stderr)
	}
	want := []string{"hello from rank 0 of 2: the ranks add up to 1", "hello from rank 1 of 2: the ranks add up to 1"}
	if got := slices.Sorted(slices.Values(out)); !slices.Equal(got, want) {
		t.Errorf("stdout %q, want %q", got, want)
	}
	assertFiles(t, job, files)

	for _, args := range [][]string{{"init", "myjob"}, {"init"}} {
		wd := dir
		if len(args) == 1 {
			wd = job
		}
		code, _, stderr = runIn(t, wd, args...)
		if code != 1 || !strings.HasPrefix(stderr, "gorun init: ") || !strings.Contains(stderr, "go.mod already exists") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("gorun %s over a project: exit %d, stderr %q; want 1 and one line saying go.mod exists", strings.Join(args, " "), code, stderr)
		}
		assertFiles(t, job, files)
	}

	// go mod tidy works from the module cache wherever it does for gorun
	// itself (a cache filled by go mod download may lack go.mod files of
	// old versions that tidy reads and builds do not).
	src, _ := filepath.Abs("../..")
	tidy := func(dir string, args ...string) ([]byte, error) {
		cmd := exec.Command("go", append([]string{"mod", "tidy"}, args...)...)
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	if out, err := tidy(src, "-diff"); err != nil && !bytes.Contains(out, []byte("diff")) {
		t.Logf("go mod tidy does not work offline for gorun itself here, so not tried in myjob:\n%s", out)
	} else if out, err := tidy(job); err != nil {
		t.Errorf("go mod tidy in myjob, offline: %v\n%s", err, out)
	}
}

// A compile error: the compiler's message, gorun's one line, exit 1.
func TestOwnProgramCompileError(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	src := strings.Replace(sumProg, "\tdefer world.Close()\n", "\tdefer world.Close()\n\tundefinedThing()\n", 1)
	writeFiles(t, dir, map[string]string{"main.go": src})
	code, out, stderr := runIn(t, dir, "-n", "2", "./main.go")
	if code != 1 || len(out) != 0 {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	if !strings.Contains(stderr, "./main.go:20:2: undefined: undefinedThing") {
		t.Errorf("stderr lacks the compiler's message:\n%s", stderr)
	}
	if got := gorunLines(stderr); len(got) != 1 || !strings.Contains(got[0], "build failed") {
		t.Errorf("gorun's lines %q: want one saying the build failed", got)
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") || strings.Contains("\n"+stderr, "\ngo: ") {
		t.Errorf("stderr has more than the compiler's message:\n%s", stderr)
	}
}
