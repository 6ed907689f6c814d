package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Program is what every rank of a job runs: an executable, built from Go
// sources if need be.
type Program struct {
	// Path is the executable's absolute path.
	Path string
	// Built says whether gorun built it from Go sources (into a temporary
	// directory that Remove deletes).
	Built bool

	tmpDir string
}

// Remove deletes the executable if gorun built it. It is safe to call on a
// nil *Program and more than once.
func (p *Program) Remove() {
	if p == nil || p.tmpDir == "" {
		return
	}
	os.RemoveAll(p.tmpDir)
	p.tmpDir = ""
}

// PrepareProgram finds the executable for prog, which is one of:
//
//   - a Go package directory ("./examples/ring") or a .go file ("main.go"):
//     built once with `go build` into a temporary directory (call Remove when
//     the job is over). The compiler's messages go to stderr as it printed
//     them; a failed build returns an error and nothing runs;
//   - a path to an executable file;
//   - a command name without a slash, looked up in PATH.
//
// The go command runs in the package's directory, so the module that
// holds the package is used whatever gorun's working directory is. Until
// gorun's module is published, a program that imports gorun's packages
// and has no go.mod, or one that cannot resolve them (no replace
// directive, and the version it requires is not in the module cache), is
// built against the gorun source this binary was built from (GorunSource):
// with a go.mod of gorun's making, never by writing the program's files.
func PrepareProgram(ctx context.Context, prog string, stderr io.Writer) (*Program, error) {
	if prog == "" {
		return nil, errors.New("no program given")
	}
	fi, err := os.Stat(prog)
	switch {
	case err == nil && fi.IsDir():
		abs, err := filepath.Abs(prog)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prog, err)
		}
		files, ferr := goFiles(abs)
		targets := []string{"."}
		if !inModule(abs) {
			// A directory of Go files outside any module: build them as a
			// list of files, which needs no go.mod.
			if ferr != nil {
				return nil, fmt.Errorf("%s: %w", prog, ferr)
			}
			targets = files
		}
		return buildGo(ctx, prog, abs, targets, files, filepath.Base(abs), stderr)
	case err == nil && strings.HasSuffix(prog, ".go") && fi.Mode().IsRegular():
		abs, err := filepath.Abs(prog)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prog, err)
		}
		base := filepath.Base(abs)
		return buildGo(ctx, prog, filepath.Dir(abs), []string{base}, []string{base}, strings.TrimSuffix(base, ".go"), stderr)
	case err == nil:
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: not a Go package, a .go file or an executable", prog)
		}
		if fi.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("%s: not executable (and not a Go package or .go file)", prog)
		}
		abs, err := filepath.Abs(prog)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prog, err)
		}
		return &Program{Path: abs}, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: %w", prog, unwrapPath(err))
	case !strings.ContainsRune(prog, os.PathSeparator):
		path, lerr := exec.LookPath(prog)
		if lerr != nil {
			return nil, fmt.Errorf("%s: no such file, directory or command in PATH", prog)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prog, err)
		}
		return &Program{Path: abs}, nil
	}
	return nil, fmt.Errorf("%s: no such file or directory", prog)
}

// inModule says whether dir is inside a Go module or workspace (a go.mod or
// go.work in it or a parent).
func inModule(dir string) bool {
	for {
		for _, f := range []string{"go.mod", "go.work"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return true
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}

// goFiles lists the non-test .go files of dir.
func goFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, unwrapPath(err)
	}
	var files []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			files = append(files, n)
		}
	}
	if len(files) == 0 {
		return nil, errors.New("a directory with no Go files (and not an executable)")
	}
	return files, nil
}

// buildGo runs `go build -o TMP/name targets...` in dir; files are the
// program's Go files (see planBuild).
func buildGo(ctx context.Context, prog, dir string, targets, files []string, name string, stderr io.Writer) (*Program, error) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("%s is Go source, but the go command is not in PATH", prog)
	}
	tmp, err := os.MkdirTemp("", "gorun-")
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", prog, err)
	}
	if name == "" || name == "." || name == string(os.PathSeparator) {
		name = "prog"
	}
	out := filepath.Join(tmp, name)
	flags, err := gorunPackages(prog, dir, files, tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	args := append(append(append([]string{"build", "-o", out}, staticTags(ctx, gocmd, dir)...), flags...), targets...)
	cmd := exec.CommandContext(ctx, gocmd, args...)
	cmd.Dir = dir
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		os.RemoveAll(tmp)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("building %s: %w", prog, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%s: build failed (go build's messages are above)", prog)
	}
	// go build -o writes a non-main package as an archive, not executable.
	if fi, err := os.Stat(out); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o100 == 0 {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("%s: not a main package: go build made no executable", prog)
	}
	return &Program{Path: out, Built: true, tmpDir: tmp}, nil
}

// staticTags returns the build flag that makes a program static where it
// has no C of its own: the tags netgo and osusergo give it the standard
// library's pure-Go name resolver and user lookup, so that, unless the
// program (or a package it imports) uses cgo, it links without libc. A
// rank then starts about 2 ms of CPU sooner than a dynamically linked one
// (no dynamic loader, no libc set-up, no cgo thread creation), 8 of them on
// a launch. It returns nothing where the user's GOFLAGS (environment or go
// env file) already choose tags, which a -tags flag would override.
func staticTags(ctx context.Context, gocmd, dir string) []string {
	cmd := exec.CommandContext(ctx, gocmd, "env", "GOFLAGS")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil || strings.Contains(string(out), "-tags") {
		return nil
	}
	return []string{"-tags=netgo,osusergo"}
}

// gorunPackages returns the go build flags that give the program in dir
// gorun's packages from the gorun source gorun was built from, when the
// go command would not find them by itself (see planBuild); their files
// go under tmp.
func gorunPackages(prog, dir string, files []string, tmp string) ([]string, error) {
	plan, err := planBuild(dir, files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prog, err)
	}
	if plan.how == asIs {
		return nil, nil
	}
	src, err := GorunSource()
	if err != nil {
		return nil, fmt.Errorf("%s imports gorun's packages, which are not published yet, and %v", prog, err)
	}
	flags, err := gorunFlags(plan, src, tmp)
	if err != nil {
		return nil, fmt.Errorf("building %s: %w", prog, err)
	}
	return flags, nil
}
