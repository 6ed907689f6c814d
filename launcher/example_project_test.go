package launcher_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gorun-hpc/gorun/launcher"
)

// The gorun source this binary was built from: here, the clone the tests
// run in.
func ExampleGorunSource() {
	src, err := launcher.GorunSource()
	if err != nil {
		fmt.Println(err)
		return
	}
	mod, _ := os.ReadFile(filepath.Join(src, "go.mod"))
	fmt.Println(strings.HasPrefix(string(mod), "module "+launcher.GorunModule+"\n"))
	// Output: true
}

// A new project that uses gorun; a second InitProject there refuses.
func ExampleInitProject() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	written, err := launcher.InitProject(filepath.Join(dir, "myjob"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range written {
		fmt.Println(filepath.Base(p))
	}
	_, err = launcher.InitProject(filepath.Join(dir, "myjob"))
	fmt.Println(strings.Contains(err.Error(), "already exists"))
	// Output:
	// go.mod
	// go.sum
	// main.go
	// true
}
