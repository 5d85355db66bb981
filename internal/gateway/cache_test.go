package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// getCard GETs url with the header key set to value (unless value is
// empty), and returns the answer and its body.
func getCard(t *testing.T, url, key, value string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if value != "" {
		req.Header.Set(key, value)
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
	return resp, b
}

// TestCardCaching: a card comes with Cache-Control max-age and an ETag,
// and a request naming that ETag in If-None-Match gets 304 Not Modified
// without a body; another ETag gets the card.
func TestCardCaching(t *testing.T) {
	hs := demo(t)
	url := hs.URL + "/a2a/echo/.well-known/agent-card.json"
	get := func(ifNoneMatch string) (*http.Response, string) {
		t.Helper()
		resp, b := getCard(t, url, "If-None-Match", ifNoneMatch)
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
	again, _ := get("")
	if again.Header.Get("ETag") != etag {
		t.Fatalf("ETag %q then %q for the same card", etag, again.Header.Get("ETag"))
	}
	lm, err := http.ParseTime(again.Header.Get("Last-Modified"))
	if err != nil || lm.After(time.Now()) || again.Header.Get("Last-Modified") != resp.Header.Get("Last-Modified") {
		t.Fatalf("Last-Modified %q then %q (%v): want one past time for the same card",
			resp.Header.Get("Last-Modified"), again.Header.Get("Last-Modified"), err)
	}
}

// TestCardPerVersion: the 1.0 card has none of the 0.3 fields the 1.0
// schema refuses; the 0.3 card (its own path, or asked for with
// A2A-Version: 0.3) has them, pointing 0.3 clients at the 0.3 endpoint.
func TestCardPerVersion(t *testing.T) {
	hs := demo(t)
	card := func(path, version string) map[string]any {
		t.Helper()
		resp, b := getCard(t, hs.URL+path, "A2A-Version", version)
		var c map[string]any
		if err := json.Unmarshal(b, &c); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d, %v", path, resp.StatusCode, err)
		}
		if resp.Header.Get("Vary") != "A2A-Version" {
			t.Errorf("GET %s: Vary %q, want A2A-Version (the card depends on it)", path, resp.Header.Get("Vary"))
		}
		return c
	}
	v1 := card("/a2a/echo/.well-known/agent-card.json", "")
	for _, f := range []string{"url", "protocolVersion", "preferredTransport"} {
		if _, ok := v1[f]; ok {
			t.Errorf("1.0 card has the 0.3 field %q", f)
		}
	}
	if _, ok := v1["supportedInterfaces"]; !ok {
		t.Errorf("1.0 card has no supportedInterfaces: %v", v1)
	}
	for _, c := range []map[string]any{
		card("/a2a/echo/v0.3/.well-known/agent-card.json", ""),
		card("/a2a/echo/.well-known/agent-card.json", "0.3"),
	} {
		if c["protocolVersion"] != "0.3" || !strings.HasSuffix(fmt.Sprint(c["url"]), "/a2a/echo/v0.3") {
			t.Errorf("0.3 card: protocolVersion %v, url %v; want 0.3 and the /v0.3 endpoint", c["protocolVersion"], c["url"])
		}
	}
}
