package contract

import "testing"

// TestReport: every line Report makes, ParseReport reads back; lines it
// does not make are refused.
func TestReport(t *testing.T) {
	for _, c := range []struct {
		event string
		code  int
	}{{ReportInit, 0}, {ReportClose, 0}, {ReportAbort, 3}, {ReportAbort, 0}, {ReportAbort, -1}, {ReportAbort, 256}, {ReportLost, 0}, {ReportLost, 7}} {
		line := Report(c.event, c.code)
		ev, code, ok := ParseReport(line)
		if !ok || ev != c.event || code != c.code {
			t.Errorf("%q: read back %q %d %v, want %q %d", line, ev, code, ok, c.event, c.code)
		}
	}
	for _, bad := range []string{"", "abort", "abort x", "init 1", "lost", "lost -1", "lost x", "mpi: rank 0 aborted the job with code 7", "close\n"} {
		if _, _, ok := ParseReport(bad); ok {
			t.Errorf("%q read as a report", bad)
		}
	}
}

// TestAbortStatus: 1..255 as given, anything else 1.
func TestAbortStatus(t *testing.T) {
	for code, want := range map[int]int{1: 1, 3: 3, 255: 255, 0: 1, -1: 1, 256: 1, 512: 1, 1 << 40: 1} {
		if got := AbortStatus(code); got != want {
			t.Errorf("AbortStatus(%d) = %d, want %d", code, got, want)
		}
	}
}
