//go:build !unix

package agentbus

import "time"

// processCPUTime is unknown on this platform.
func processCPUTime() (time.Duration, bool) { return 0, false }
