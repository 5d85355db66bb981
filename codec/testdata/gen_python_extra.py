#!/usr/bin/env python3
"""Regenerates codec/testdata/python-extra/ with Python's msgpack and lz4.

These frames exercise what the seed vectors do not: LZ4 frames over 64 KiB
(linked blocks, as lz4.frame.compress writes them by default) and frames with
block and content checksums. Each NAME.bin has its value in NAME.json, with
msgpack bin written as {"$bytes": "<base64>"}.

    python3 gen_python_extra.py   # Debian: apt-get install python3-msgpack python3-lz4
"""
import base64, json, os, random
import lz4.frame, msgpack

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python-extra")
WORDS = "agent task call result summarize weather report über plan tool".split()


def to_json(v):
    if isinstance(v, bytes):
        return {"$bytes": base64.b64encode(v).decode()}
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    return v


def message(rng, i, text_len):
    return {
        "id": "msg-%016x" % rng.getrandbits(64),
        "from": "agent-%d" % rng.randrange(1000),
        "to": "agent-%d" % rng.randrange(1000),
        "kind": "message/send",
        "ts": 1700000000000 + i,
        "headers": {"trace": "%08x" % rng.getrandbits(32), "priority": str(i % 3)},
        "parts": [{"kind": "text", "text": " ".join(rng.choice(WORDS) for _ in range(text_len))[:text_len]}],
        "seq": i,
        "ok": i % 2 == 0,
        "score": rng.random(),
    }


def write(name, value, **lz4_args):
    body = msgpack.packb(value, use_bin_type=True)
    frame = b"LZ4" + lz4.frame.compress(body, compression_level=1, **lz4_args)
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(frame)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(to_json(value), f, indent=1, ensure_ascii=False)


def main():
    rng = random.Random(7)
    os.makedirs(OUT, exist_ok=True)
    # About 150 KiB of msgpack: three 64 KiB blocks, linked.
    write("linked-batch", [message(rng, i, 400) for i in range(300)])
    # A large binary value among text: blocks that do not compress.
    big = {"id": "mixed", "blob": bytes(rng.getrandbits(8) for _ in range(70000)),
           "text": " ".join(rng.choice(WORDS) for _ in range(20000))}
    write("linked-mixed", big)
    # Checksums on every block and on the content.
    write("checksums", [message(rng, i, 200) for i in range(20)],
          block_checksum=True, content_checksum=True)


if __name__ == "__main__":
    main()
