package gateway

import (
	"net/url"
	"strings"
	"testing"

	"github.com/a2abus/a2abus/placement"
)

// FuzzParseSidecars: any --sidecars value gives valid agents and http(s)
// URLs, or an error; never a panic.
func FuzzParseSidecars(f *testing.F) {
	f.Add("planner=http://10.0.0.7:9000/rpc,billing=https://b.example/a2a")
	f.Add("a=http://h/,a=http://i/")
	f.Add(",,=")
	f.Fuzz(func(t *testing.T, s string) {
		scs, err := ParseSidecars(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, sc := range scs {
			if placement.ValidateAgentID(sc.ID) != nil || seen[sc.ID] {
				t.Fatalf("ParseSidecars(%q): bad or repeated agent %q", s, sc.ID)
			}
			seen[sc.ID] = true
			u, err := url.Parse(sc.URL)
			if err != nil || !strings.HasPrefix(u.Scheme, "http") || u.Host == "" {
				t.Fatalf("ParseSidecars(%q): bad URL %q", s, sc.URL)
			}
		}
	})
}
