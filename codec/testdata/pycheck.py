#!/usr/bin/env python3
"""Checks that Python's msgpack and lz4.frame read Go-made frames.

    dir=$(mktemp -d)
    CODEC_GO_FRAMES_DIR=$dir go test -run TestWriteGoFrames ./codec/
    python3 codec/testdata/pycheck.py $dir

Every NAME.bin in the directory is decoded as the seed's Python code
decodes frames (tag RAW: msgpack; tag LZ4: lz4.frame.decompress, then
msgpack) and compared with NAME.json ({"$bytes": base64} for bin, integers
exact). For RAW and LZ4 frames of the seed's vectors, the script also
re-encodes the value as the seed does and compares the bytes.
Needs Debian's python3-msgpack and python3-lz4.
"""
import base64, json, os, sys
import lz4.frame, msgpack


def from_json(v):
    if isinstance(v, dict):
        if len(v) == 1 and "$bytes" in v:
            return base64.b64decode(v["$bytes"])
        return {k: from_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json(x) for x in v]
    return v


def decode(frame):
    tag, body = frame[:3], frame[3:]
    if tag == b"RAW":
        pass
    elif tag == b"LZ4":
        body = lz4.frame.decompress(body)
    else:
        raise ValueError("tag %r" % tag)
    return msgpack.unpackb(body, raw=False)


def encode(value):
    body = msgpack.packb(value, use_bin_type=True)
    if len(body) > 1024:
        c = lz4.frame.compress(body, compression_level=1)
        if len(c) < len(body) * 0.9:
            return b"LZ4" + c
    return b"RAW" + body


def main(d):
    ok = bad = same = defaults = 0
    for name in sorted(os.listdir(d)):
        if not name.endswith(".bin"):
            continue
        path = os.path.join(d, name)
        frame = open(path, "rb").read()
        want = from_json(json.load(open(path[:-4] + ".json")))
        try:
            got = decode(frame)
        except Exception as e:  # noqa: BLE001
            print("FAIL %s: %s" % (name, e))
            bad += 1
            continue
        if got != want:
            print("FAIL %s: value differs" % name)
            bad += 1
            continue
        ok += 1
        note = ""
        if name.endswith("-default.bin"):
            # Made with the Codec's defaults: compare with the seed's rule.
            identical = encode(want) == frame
            same += identical
            defaults += 1
            note = "; byte-identical to Python's frame: %s" % identical
        print("ok   %s (%d bytes%s)" % (name, len(frame), note))
    print("%d passed, %d failed" % (ok, bad))
    print("%d of %d default frames byte-identical to the seed's Python encoder" % (same, defaults))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
