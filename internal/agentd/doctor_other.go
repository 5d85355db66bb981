//go:build !unix

package agentd

import "errors"

// openFileLimit is unknown on this platform.
func openFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("no open-file limit on this platform")
}
