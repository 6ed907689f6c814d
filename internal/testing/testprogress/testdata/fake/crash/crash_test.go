package crash

import (
	"os"
	"testing"
)

func TestCrash(t *testing.T) { t.Log("before the crash"); os.Exit(3) }
