package blocked

import (
	"strings"
	"testing"
)

// TestSiteDeep: a call entered more than shallow frames below the
// caller's own frame (here every frame of this test is the package's own,
// so the first caller's frame is the testing package's) still gets its
// site: Enter takes the whole stack when the first frames are all
// gorun's.
func TestSiteDeep(t *testing.T) {
	for _, depth := range []int{0, shallow, 3 * shallow} {
		var e Entry
		var nest func(k int)
		nest = func(k int) {
			if k == 0 {
				e = Enter(Call{Op: "deep"})
				return
			}
			nest(k - 1)
		}
		nest(depth)
		calls, _ := Snapshot()
		e.Exit()
		var site string
		for _, c := range calls {
			if c.Op == "deep" {
				site = c.Site
			}
		}
		if !strings.HasPrefix(site, "testing.go:") {
			t.Errorf("entered %d frames deep: site %q, want the testing package's frame", depth, site)
		}
	}
}
