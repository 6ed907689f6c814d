package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/gorun-hpc/gorun/launcher"
)

// initUsage is gorun init's help text.
const initUsage = `Usage:
  gorun init [DIR]

gorun init makes DIR (default: the current directory) a new Go project that
uses gorun: a go.mod that requires gorun (and, until its module is
published, replaces it with the gorun source this gorun was built from), its
go.sum (the project builds from the module cache that builds gorun), and a
main.go every rank runs (Init, rank and size, an Allreduce, Close). It
overwrites no file. Then:

  cd DIR && gorun -n 4 .
`

// initCommand is "gorun init [DIR]"; it returns the exit status.
func initCommand(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		switch {
		case a == "-h" || a == "-help" || a == "--help":
			fmt.Fprint(stdout, initUsage)
			return launcher.ExitOK
		case len(a) > 1 && a[0] == '-':
			fmt.Fprintf(stderr, "gorun init: unknown flag %s (usage: gorun init [DIR])\n", a)
			return launcher.ExitUsage
		}
	}
	if len(args) > 1 {
		fmt.Fprintf(stderr, "gorun init: one directory at most, got %d: %s (usage: gorun init [DIR])\n", len(args), strings.Join(args, " "))
		return launcher.ExitUsage
	}
	dir := "."
	if len(args) == 1 {
		dir = args[0]
	}
	written, err := launcher.InitProject(dir)
	if err != nil {
		fmt.Fprintf(stderr, "gorun init: %v\n", err)
		return launcher.ExitFailure
	}
	names := make([]string, len(written))
	for i, p := range written {
		names[i] = filepath.Base(p)
	}
	fmt.Fprintf(stdout, "gorun init: wrote %s in %s\n", strings.Join(names, ", "), dir)
	if filepath.Clean(dir) == "." {
		fmt.Fprintln(stdout, "run it: gorun -n 4 .")
	} else {
		fmt.Fprintf(stdout, "run it: cd %s && gorun -n 4 .\n", dir)
	}
	return launcher.ExitOK
}
