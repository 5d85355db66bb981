package gateway_test

import (
	"os"
	"testing"
	"time"
)

func TestProbeServe(t *testing.T) {
	if os.Getenv("PROBE") == "" {
		t.Skip()
	}
	hs := demo(t)
	os.WriteFile("/tmp/jsprobe/url", []byte(hs.URL), 0o644)
	time.Sleep(10 * time.Minute)
}
