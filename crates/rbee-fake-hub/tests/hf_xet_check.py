"""Download one file with the real huggingface_hub + hf_xet from the fake hub; print JSON.

Environment: HF_ENDPOINT (the fake hub), HF_HOME (a temp dir), REPO, REVISION, FILENAME.
Prints {"sha256": ..., "xet_hash": ...}: the downloaded file's digest, and its Xet file hash
as hf_xet itself computes it (hash_files), so the caller can compare both with its own.
"""
import hashlib
import json
import os

import hf_xet
from huggingface_hub import hf_hub_download

path = hf_hub_download(
    os.environ["REPO"], os.environ["FILENAME"], revision=os.environ["REVISION"]
)
digest = hashlib.sha256()
with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
print(json.dumps({"sha256": digest.hexdigest(), "xet_hash": hf_xet.hash_files([path])[0].hash}))
