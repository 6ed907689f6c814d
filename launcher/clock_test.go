package launcher

import "testing"

// TestClockOffset: a host whose pings allow no skew gets none; one whose
// pings all say it is ahead gets the middle of what they allow; crossed
// bounds (a clock stepped during the pings) fall back to the best ping.
func TestClockOffset(t *testing.T) {
	for _, c := range []struct{ lo, hi, best, want int64 }{
		{-300_000, 500_000, 120_000, 0}, // one machine's namespaces: the busy pings' midpoint was 0.12 ms off
		{2_000_000, 2_400_000, 2_100_000, 2_200_000},
		{-5_000_000, -4_000_000, -4_100_000, -4_500_000},
		{1_000, -1_000, 7, 7},
	} {
		if got := clockOffset(c.lo, c.hi, c.best); got != c.want {
			t.Errorf("clockOffset(%d, %d, %d) = %d, want %d", c.lo, c.hi, c.best, got, c.want)
		}
	}
}
