package good

import (
	"fmt"
	"testing"
)

func TestUnit(t *testing.T)  { t.Log("quiet when it passes") }
func TestProcs(t *testing.T) { t.Attr("group", "multi-process") }
func TestHosts(t *testing.T) { t.Attr("group", "multi-host"); t.Skip("needs root") }
func TestHosts2(t *testing.T) {
	t.Run("a", func(t *testing.T) { t.Attr("group", "multi-host"); t.Skip("needs root") })
}

func Example() {
	fmt.Println("hi")
	// Output: hi
}
