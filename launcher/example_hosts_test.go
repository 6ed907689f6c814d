package launcher_test

import (
	"fmt"

	"github.com/gorun-hpc/gorun/launcher"
)

func ExampleParseSSHOpts() {
	opts, _ := launcher.ParseSSHOpts(`-i ~/.ssh/cluster -o "ProxyJump=gw.example"`)
	fmt.Printf("%q\n", opts)
	// Output: ["-i" "~/.ssh/cluster" "-o" "ProxyJump=gw.example"]
}
