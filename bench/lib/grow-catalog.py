"""Grows a catalog holding one entry, hf:bench/tiny, to N entries (hf:bench/tiny-00001, …):
each a copy of its record, naming itself, with its files hard-linked. Used by the catalog
timings of bench/catalog.sh and bench/transfer.sh.

Usage: python3 bench/lib/grow-catalog.py CATALOG N
"""
import os
import sys

root, n = sys.argv[1], int(sys.argv[2])
src = os.path.join(root, "hf", "bench", "tiny")
(variant,) = os.listdir(src)
record = open(os.path.join(src, variant, "metadata.json")).read()
for i in range(1, n):
    name = f"tiny-{i:05}"
    dst = os.path.join(root, "hf", "bench", name, variant)
    os.makedirs(os.path.join(dst, "files"), exist_ok=True)
    with open(os.path.join(dst, "metadata.json"), "w") as f:
        f.write(record.replace("bench/tiny", f"bench/{name}").replace("bench--tiny--", f"bench--{name}--"))
    for dirpath, _, files in os.walk(os.path.join(src, variant, "files")):
        for fn in files:
            rel = os.path.relpath(os.path.join(dirpath, fn), os.path.join(src, variant))
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            os.link(os.path.join(dirpath, fn), os.path.join(dst, rel))
