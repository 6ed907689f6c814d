package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// InitProject makes dir (and its parents, as needed) a new Go project that
// uses gorun, and returns the paths it wrote: a go.mod that requires gorun's
// module and, until it is published, replaces it with the gorun source this
// binary was built from (GorunSource); a go.sum; and a main.go that every
// rank runs (Init, its rank and the world's size, an Allreduce, Close). The
// go.mod also requires, as indirect, what gorun's own go.mod requires, and
// the go.sum is gorun's: the project builds from the module cache that
// builds gorun, without asking any proxy (go mod tidy may later drop what
// it does not need). It refuses, writing nothing, if dir already has a
// go.mod, go.sum or main.go.
func InitProject(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	names := []string{"go.mod", "go.sum", "main.go"}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s already exists: gorun init writes go.mod, go.sum and main.go, and overwrites none (give it a new directory)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, unwrapPath(err))
		}
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a directory", dir)
	}
	src, err := GorunSource()
	if err != nil {
		return nil, err
	}
	srcMod, err := readGoMod(filepath.Join(src, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("gorun's source %s: %w", src, unwrapPath(err))
	}
	gorunSum, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if err != nil {
		return nil, fmt.Errorf("gorun's source %s: %w", src, unwrapPath(err))
	}
	name := moduleName(filepath.Base(abs))
	mod := fmt.Sprintf("module %s\n\ngo %s\n\nrequire %s %s\n", name, srcMod.goVer, GorunModule, gorunNoVersion)
	if len(srcMod.require) > 0 {
		mod += "\nrequire (\n"
		for _, p := range slices.Sorted(maps.Keys(srcMod.require)) {
			mod += fmt.Sprintf("\t%s %s // indirect\n", modPath(p), srcMod.require[p])
		}
		mod += ")\n"
	}
	mod += fmt.Sprintf("\n// Until gorun's module is published: the gorun source this project was made with.\n"+
		"replace %s => %s\n", GorunModule, modPath(src))
	contents := map[string]string{
		"go.mod":  mod,
		"go.sum":  string(gorunSum),
		"main.go": strings.ReplaceAll(helloMain, "NAME", name),
	}

	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, unwrapPath(err)
	}
	var written []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := writeNew(p, contents[n]); err != nil {
			for _, w := range written {
				os.Remove(w)
			}
			return nil, err
		}
		written = append(written, p)
	}
	return written, nil
}

// writeNew writes a new file, or fails if path exists.
func writeNew(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: gorun init overwrites no file", path)
		}
		return unwrapPath(err)
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	return nil
}

// moduleName makes a module path of a directory's name: letters, digits
// and "-._~" kept, anything else a "-".
func moduleName(base string) string {
	b := []byte(base)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			b[i] = '-'
		}
	}
	name := strings.Trim(string(b), "-.")
	if name == "" {
		return "gorunjob"
	}
	return name
}

// helloMain is the main.go of InitProject, NAME its module's name.
const helloMain = `// Command NAME is a gorun job: every rank runs this main.
//
//	gorun -n 4 .
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/gorun-hpc/gorun/collectives"
	"github.com/gorun-hpc/gorun/mpi"
)

func main() {
	ctx := context.Background()
	// Join the job gorun started (run alone, a world of one rank).
	world, err := mpi.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "NAME:", err)
		os.Exit(1)
	}
	rank, size := world.Rank(), world.Size()

	// Every rank gives its rank number; every rank gets the total.
	sum, err := collectives.Allreduce(ctx, world, []int{rank}, collectives.Sum)
	if err != nil {
		fmt.Fprintf(os.Stderr, "NAME: rank %d: %v\n", rank, err)
		world.Close()
		os.Exit(1)
	}
	fmt.Printf("hello from rank %d of %d: the ranks add up to %d\n", rank, size, sum[0])

	if err := world.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "NAME: rank %d: %v\n", rank, err)
		os.Exit(1)
	}
}
`
