package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"
)

// cardMaxAge is how long a client may use a card without asking again: the
// registry's cards change when an agent registers anew, rarely.
const cardMaxAge = "max-age=300"

// cacheable serves h's answers to GET with the validators HTTP caches use:
// Cache-Control with cardMaxAge, and an ETag of the body, answering 304 Not
// Modified to a request whose If-None-Match names it; Last-Modified is when
// this handler first served the body it serves now.
func cacheable(h http.Handler) http.Handler {
	var (
		mu       sync.Mutex
		lastETag string
		since    time.Time
	)
	modified := func(etag string) time.Time {
		mu.Lock()
		defer mu.Unlock()
		if etag != lastETag {
			lastETag, since = etag, time.Now().UTC().Truncate(time.Second)
		}
		return since
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		if rec.status != http.StatusOK {
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
			return
		}
		sum := sha256.Sum256(rec.body.Bytes())
		etag := `"` + hex.EncodeToString(sum[:16]) + `"`
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", cardMaxAge)
		w.Header().Set("Last-Modified", modified(etag).Format(http.TimeFormat))
		if matches(r.Header.Get("If-None-Match"), etag) {
			w.Header().Del("Content-Length")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(rec.body.Bytes())
		}
	})
}

// matches reports whether an If-None-Match header names etag (or is *).
func matches(ifNoneMatch, etag string) bool {
	for _, t := range strings.Split(ifNoneMatch, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// recorder keeps an answer to be sent later.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }
