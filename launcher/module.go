package launcher

// A user's program outside the gorun clone: until the module is published,
// `go build` cannot fetch github.com/gorun-hpc/gorun, so gorun resolves its
// packages against the gorun source it was itself built from. The user's
// files are never written: the go command is given a go.mod of gorun's
// making with -modfile (and, where the program has none, -overlay, which
// makes the go command see one in the program's directory).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// GorunModule is the module path of gorun's packages.
const GorunModule = "github.com/gorun-hpc/gorun"

// gorunNoVersion is the version a require of a module that is replaced by
// a directory conventionally names (what go mod tidy writes).
const gorunNoVersion = "v0.0.0-00010101000000-000000000000"

// sourceDir, when set at link time with
//
//	-ldflags "-X github.com/gorun-hpc/gorun/launcher.sourceDir=DIR"
//
// names the gorun source of a binary built with -trimpath, whose file names
// are not absolute. Other builds need not set it.
var sourceDir string

var gorunSrc struct {
	once sync.Once
	dir  string
	err  error
}

// GorunSource returns the root directory of the gorun module source this
// binary was built from: a clone (go build, go install ./cmd/gorun, make,
// or go test), or the module cache for a published version.
//
// It is found from the name of this very file as the compiler recorded it
// (what a stack trace prints): unlike the build info, which has the module's
// path and version but not where it was, this is present in every build
// without -trimpath, needs no flag in the Makefile, and names the source
// that was compiled, not a guess at where it might be. The directory must
// still hold gorun's go.mod; an error says so if it was moved or removed.
func GorunSource() (string, error) {
	gorunSrc.once.Do(func() {
		gorunSrc.dir, gorunSrc.err = findGorunSource()
	})
	return gorunSrc.dir, gorunSrc.err
}

func findGorunSource() (string, error) {
	dir := sourceDir
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok || !filepath.IsAbs(file) {
			return "", errors.New("gorun was built with -trimpath, so it does not know where its source is " +
				"(build it from its clone with make install, or link it with -X " + GorunModule + "/launcher.sourceDir=DIR)")
		}
		dir = filepath.Dir(file)
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				root := strings.TrimSuffix(filepath.Dir(file), string(filepath.Separator)+"launcher")
				return "", fmt.Errorf("the gorun source gorun was built from (%s) is gone: rebuild gorun from its clone (make install)", root)
			}
			dir = parent
		}
	}
	mf, err := readGoMod(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("the gorun source gorun was built from (%s) is gone or damaged: rebuild gorun from its clone (make install): %w", dir, unwrapPath(err))
	}
	if mf.module != GorunModule {
		return "", fmt.Errorf("%s is not the gorun source (its go.mod is module %q): rebuild gorun from its clone (make install)", dir, mf.module)
	}
	return dir, nil
}

// goMod is what gorun needs to know of a go.mod file.
type goMod struct {
	module   string
	goVer    string            // the go directive
	require  map[string]string // module path: version
	replaced map[string]bool   // module paths with a replace directive
}

func readGoMod(path string) (*goMod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseGoMod(data), nil
}

// parseGoMod reads the module, go, require and replace directives of a
// go.mod file, in blocks or not. It is lenient: what it does not understand
// is left for the go command to report.
func parseGoMod(data []byte) *goMod {
	m := &goMod{require: map[string]string{}, replaced: map[string]bool{}}
	block := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		verb := block
		switch {
		case block != "" && f[0] == ")":
			block = ""
			continue
		case block == "" && len(f) == 2 && f[1] == "(":
			block = f[0]
			continue
		case block == "":
			verb, f = f[0], f[1:]
		}
		if len(f) == 0 {
			continue
		}
		path := unquote(f[0])
		switch verb {
		case "module":
			m.module = path
		case "go":
			m.goVer = path
		case "require":
			if len(f) >= 2 {
				m.require[path] = unquote(f[1])
			}
		case "replace":
			m.replaced[path] = true
		}
	}
	return m
}

func unquote(s string) string {
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, "`") {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
	}
	return s
}

// modPath quotes a path for a go.mod file if it needs it.
func modPath(p string) string {
	if strings.ContainsAny(p, " \t\"'`\\(){}[],=") || strings.Contains(p, "//") {
		return strconv.Quote(p)
	}
	return p
}

// importsGorun says whether any of the Go files (names in dir) imports one
// of gorun's packages. Files that do not parse are skipped: the compiler
// will say what is wrong with them.
func importsGorun(dir string, files []string) bool {
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err == nil && (p == GorunModule || strings.HasPrefix(p, GorunModule+"/")) {
				return true
			}
		}
	}
	return false
}

// findUp returns the nearest file named name in dir or a parent, or "".
func findUp(dir, name string) string {
	for {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// workspace says whether the go command run in dir is in workspace mode
// (GOWORK names a file, or a go.work is in dir or a parent).
func workspace(dir string) bool {
	switch w := os.Getenv("GOWORK"); w {
	case "off":
		return false
	case "", "auto":
		return findUp(dir, "go.work") != ""
	default:
		return true
	}
}

// How a Go program's build gets gorun's packages (see planBuild).
const (
	asIs      = "as is"            // the go command finds them by itself
	tempMod   = "temporary module" // no go.mod: one made by gorun, seen through -overlay
	modfileOf = "go.mod copy"      // the program's go.mod, copied with a replace added
)

// buildPlan is how to build a Go program.
type buildPlan struct {
	how     string
	modRoot string // the directory whose go.mod the go command uses
	goMod   string // for modfileOf: the program's go.mod
}

// planBuild decides how the Go program in dir (its non-test files, or
// the one file given) gets gorun's packages:
//
//   - asIs when it does not import them, when a go.work applies (the
//     user's own arrangement), or when its go.mod is gorun's (a program
//     in the clone) or resolves gorun by itself: a replace directive, or
//     a required version already in the module cache;
//   - tempMod when it has no go.mod: gorun makes one that requires gorun
//     and replaces it with gorun's source;
//   - modfileOf when its go.mod requires gorun at a version it cannot
//     have (not published yet), or does not require it at all: a copy of
//     it with the require and the replace added.
func planBuild(dir string, files []string) (buildPlan, error) {
	if workspace(dir) {
		return buildPlan{how: asIs}, nil
	}
	gomod := findUp(dir, "go.mod")
	if gomod == "" {
		if !importsGorun(dir, files) {
			return buildPlan{how: asIs}, nil
		}
		return buildPlan{how: tempMod, modRoot: dir}, nil
	}
	m, err := readGoMod(gomod)
	if err != nil {
		return buildPlan{}, unwrapPath(err)
	}
	plan := buildPlan{how: modfileOf, modRoot: filepath.Dir(gomod), goMod: gomod}
	switch v, required := m.require[GorunModule]; {
	case m.module == GorunModule || m.replaced[GorunModule]:
		return buildPlan{how: asIs}, nil
	case required:
		if inModCache(GorunModule, v) {
			return buildPlan{how: asIs}, nil
		}
		return plan, nil
	case importsGorun(dir, files):
		return plan, nil
	}
	return buildPlan{how: asIs}, nil
}

// inModCache says whether version v of module path is in the module cache
// (so that the go command has it without asking any proxy).
func inModCache(path, v string) bool {
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	cache := strings.TrimSpace(string(out))
	if err != nil || cache == "" {
		return false
	}
	_, err = os.Stat(filepath.Join(cache, filepath.FromSlash(path)+"@"+v, "go.mod"))
	return err == nil
}

// gorunFlags writes, under tmp, the go.mod and go.sum that give plan's
// build gorun's packages from src, and returns the go build flags that use
// them. Nothing is written in the program's directory: -modfile makes the
// go command read and update the copy (and its go.sum beside it); for a
// program without a go.mod, -overlay shows the go command one in the
// program's directory, which it needs to find the module's root.
func gorunFlags(plan buildPlan, src, tmp string) ([]string, error) {
	gorunSum, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if err != nil {
		return nil, fmt.Errorf("gorun's source %s: %w", src, unwrapPath(err))
	}
	srcMod, err := readGoMod(filepath.Join(src, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("gorun's source %s: %w", src, unwrapPath(err))
	}
	modDir := filepath.Join(tmp, "mod")
	if err := os.Mkdir(modDir, 0o755); err != nil {
		return nil, err
	}
	var mod, sum []byte
	switch plan.how {
	case tempMod:
		mod = fmt.Appendf(nil, "module gorunjob\n\ngo %s\n\nrequire %s %s\n", srcMod.goVer, GorunModule, gorunNoVersion)
	case modfileOf:
		if mod, err = os.ReadFile(plan.goMod); err != nil {
			return nil, unwrapPath(err)
		}
		mod = append(bytes.TrimRight(mod, "\n"), '\n')
		if _, ok := parseGoMod(mod).require[GorunModule]; !ok {
			mod = fmt.Appendf(mod, "\nrequire %s %s\n", GorunModule, gorunNoVersion)
		}
		sum, _ = os.ReadFile(filepath.Join(plan.modRoot, "go.sum")) // none is fine
	default:
		return nil, nil
	}
	mod = fmt.Appendf(mod, "\nreplace %s => %s\n", GorunModule, modPath(src))
	modFile := filepath.Join(modDir, "go.mod")
	if err := os.WriteFile(modFile, mod, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(modDir, "go.sum"), mergeSums(sum, gorunSum), 0o644); err != nil {
		return nil, err
	}
	// -mod=mod lets the go command complete the copy (indirect requires,
	// a higher go directive than the program's) instead of refusing.
	flags := []string{"-modfile=" + modFile, "-mod=mod"}
	if plan.how == tempMod {
		overlay := filepath.Join(modDir, "overlay.json")
		js, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(plan.modRoot, "go.mod"): modFile}})
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(overlay, js, 0o644); err != nil {
			return nil, err
		}
		flags = append(flags, "-overlay="+overlay)
	}
	return flags, nil
}

// mergeSums is the lines of a and b, each once, a's first.
func mergeSums(a, b []byte) []byte {
	seen := map[string]bool{}
	var out []byte
	for _, data := range [][]byte{a, b} {
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !seen[l] {
				seen[l] = true
				out = append(append(out, l...), '\n')
			}
		}
	}
	return out
}
