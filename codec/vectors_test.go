package codec

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

type vector struct {
	name  string
	frame []byte
	value any // parsed from NAME.json: OrderedMap objects, exact integers
}

// loadVectors reads every NAME.bin with its NAME.json from dir.
func loadVectors(t testing.TB, dir string) []vector {
	t.Helper()
	bins, err := filepath.Glob(filepath.Join("testdata", dir, "*.bin"))
	if err != nil || len(bins) == 0 {
		t.Fatalf("no vectors in testdata/%s: %v", dir, err)
	}
	var vs []vector
	for _, bin := range bins {
		frame, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		js, err := os.ReadFile(strings.TrimSuffix(bin, ".bin") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		v, err := ParseJSON(js)
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		vs = append(vs, vector{name: dir + "/" + filepath.Base(bin), frame: frame, value: v})
	}
	return vs
}

// unordered turns OrderedMaps into map[string]any, recursively.
func unordered(v any) any {
	switch v := v.(type) {
	case OrderedMap:
		m := make(map[string]any, len(v))
		for _, kv := range v {
			m[kv.Key] = unordered(kv.Value)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = unordered(e)
		}
		return a
	}
	return v
}

// TestSeedVectors checks that every frame made by the seed's Python code
// decodes to the value beside it, on the generic and the ordered paths, and
// that encoding that value gives back the same bytes.
func TestSeedVectors(t *testing.T) {
	c := MustNew()
	for _, v := range append(loadVectors(t, "seed-python"), loadVectors(t, "python-extra")...) {
		t.Run(v.name, func(t *testing.T) {
			got, err := c.DecodeValue(v.frame)
			if err != nil {
				t.Fatal(err)
			}
			if want := unordered(v.value); !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeValue = %v\nwant %v", got, want)
			}
			ordered, err := c.DecodeOrdered(v.frame)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ordered, v.value) {
				t.Fatalf("DecodeOrdered differs from the JSON (order or types)")
			}
			enc, err := c.EncodeValue(nil, v.value)
			if err != nil {
				t.Fatal(err)
			}
			// All but the vector made with checksums on (which the seed
			// does not use) are byte-identical, linked blocks included.
			if !strings.Contains(v.name, "checksums") && !bytes.Equal(enc, v.frame) {
				t.Fatalf("EncodeValue gives %d bytes that differ from Python's %d", len(enc), len(v.frame))
			}
			back, err := c.DecodeOrdered(enc)
			if err != nil || !reflect.DeepEqual(back, v.value) {
				t.Fatalf("our frame does not decode to the value: %v", err)
			}
		})
	}
}

// TestSeedBatchEnvelopes decodes the seed's batch as envelopes: the routing
// fields land in their fields, the rest in Extra, and re-encoding loses
// nothing.
func TestSeedBatchEnvelopes(t *testing.T) {
	c := MustNew()
	frame, err := os.ReadFile("testdata/seed-python/batch.bin")
	if err != nil {
		t.Fatal(err)
	}
	envs, err := c.DecodeBatch(nil, frame)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := c.DecodeValue(frame)
	wantList := want.([]any)
	if len(envs) != len(wantList) {
		t.Fatalf("got %d envelopes, want %d", len(envs), len(wantList))
	}
	for i := range envs {
		m := wantList[i].(map[string]any)
		e := &envs[i]
		if e.ID != m["id"] || e.From != m["from"] || e.To != m["to"] || e.Kind != m["kind"] || e.CreatedAt != m["ts"] {
			t.Fatalf("envelope %d: routing fields %+v from %v", i, e, m)
		}
		if e.Headers.Get("trace") != m["headers"].(map[string]any)["trace"] {
			t.Fatalf("envelope %d: headers %v", i, e.Headers)
		}
		for _, k := range []string{"parts", "seq", "ok", "score"} {
			if !reflect.DeepEqual(e.Extra[k], m[k]) {
				t.Fatalf("envelope %d: Extra[%q] = %v, want %v", i, k, e.Extra[k], m[k])
			}
		}
		body, err := e.AppendMsgpack(nil)
		if err != nil {
			t.Fatal(err)
		}
		back, err := UnmarshalValue(body)
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Fatalf("envelope %d: re-encoded as %v, want %v (%v)", i, back, m, err)
		}
	}
}

// TestWriteGoFrames writes Go-made frames of every vector value, and a few
// envelope batches, with their JSON, for testdata/pycheck.py to decode with
// Python's msgpack and lz4.frame. It runs only when CODEC_GO_FRAMES_DIR is
// set: `go test` itself never needs Python.
func TestWriteGoFrames(t *testing.T) {
	dir := os.Getenv("CODEC_GO_FRAMES_DIR")
	if dir == "" {
		t.Skip("set CODEC_GO_FRAMES_DIR to write frames for testdata/pycheck.py")
	}
	write := func(name string, frame []byte, value any) {
		js, err := AppendJSON(nil, value)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".bin"), frame, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw := MustNew(WithCompression(CompressNone))
	lz := MustNew(WithCompressionThreshold(0))
	def := MustNew()
	for _, v := range append(loadVectors(t, "seed-python"), loadVectors(t, "python-extra")...) {
		name := strings.NewReplacer("/", "-", ".bin", "").Replace(v.name)
		for _, c := range []struct {
			tag string
			c   *Codec
		}{{"raw", raw}, {"lz4", lz}, {"default", def}} {
			frame, err := c.c.EncodeValue(nil, v.value)
			if err != nil {
				t.Fatal(err)
			}
			write(name+"-"+c.tag, frame, v.value)
		}
	}
	for _, n := range []int{1, 50, 500, 2000} {
		envs := benchEnvelopes(n, 256)
		for _, c := range []struct {
			tag string
			c   *Codec
		}{{"raw", raw}, {"lz4", lz}, {"default", def}} {
			frame, err := c.c.EncodeBatch(nil, envs)
			if err != nil {
				t.Fatal(err)
			}
			v, err := c.c.DecodeOrdered(frame)
			if err != nil {
				t.Fatal(err)
			}
			write("go-batch-"+strconv.Itoa(n)+"-"+c.tag, frame, v)
		}
	}
}
