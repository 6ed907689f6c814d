package bad

import "testing"

func TestFails(t *testing.T) {
	t.Run("sub", func(t *testing.T) { t.Log("boom in sub"); t.Fail() })
	t.Run("ok", func(t *testing.T) { t.Log("ok sub log") })
	t.Error("boom in parent")
}
func TestPasses(t *testing.T) { t.Log("noise") }
