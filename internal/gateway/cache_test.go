package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCardCaching: a card comes with Cache-Control max-age and an ETag,
// and a request naming that ETag in If-None-Match gets 304 Not Modified
// without a body; another ETag gets the card.
func TestCardCaching(t *testing.T) {
	hs := demo(t)
	url := hs.URL + "/a2a/echo/.well-known/agent-card.json"
	get := func(ifNoneMatch string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ifNoneMatch != "" {
			req.Header.Set("If-None-Match", ifNoneMatch)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	resp, body := get("")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") ||
		!strings.Contains(strings.ReplaceAll(body, " ", ""), `"name":"echo"`) {
		t.Fatalf("card: %d, ETag %q, Cache-Control %q, body %.80s", resp.StatusCode, etag, resp.Header.Get("Cache-Control"), body)
	}
	resp, body = get(etag)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Fatalf("If-None-Match %s: %d with %d bytes, want 304 and none", etag, resp.StatusCode, len(body))
	}
	resp, _ = get(`"another"`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("If-None-Match of another ETag: %d, want 200", resp.StatusCode)
	}
	if again, _ := get(""); again.Header.Get("ETag") != etag {
		t.Fatalf("ETag %q then %q for the same card", etag, again.Header.Get("ETag"))
	}
}
