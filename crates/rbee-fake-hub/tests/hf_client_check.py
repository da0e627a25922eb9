"""Drive the real huggingface_hub client against the fake hub; exit 0 and print OK when faithful.

Environment: HF_ENDPOINT (the fake hub), HF_HOME (a temp dir), FIXTURE (the served root).
"""
import hashlib
import os
import sys

from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

root = os.environ["FIXTURE"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def sha256(path):
    return hashlib.sha256(read(path)).hexdigest()


def expect(error_type, fn):
    try:
        fn()
    except error_type:
        return
    except Exception as e:  # noqa: BLE001 - report the unexpected type
        sys.exit(f"expected {error_type.__name__}, got {type(e).__name__}: {e}")
    sys.exit(f"expected {error_type.__name__}, got success")


repo_dir = os.path.join(root, "hf", "org", "repo")

# One LFS file (302 to the CDN) and one regular file.
p = hf_hub_download("org/repo", "model.Q4_K_M.gguf")
assert sha256(p) == sha256(os.path.join(repo_dir, "model.Q4_K_M.gguf")), "gguf bytes differ"
p = hf_hub_download("org/repo", "sub/tokenizer.json")
assert read(p) == read(os.path.join(repo_dir, "sub", "tokenizer.json")), "tokenizer bytes differ"

# Another branch, and a PR ref.
p = hf_hub_download("org/repo", "config.json", revision="v2")
assert read(p) == read(os.path.join(repo_dir, ".revisions", "v2", "config.json")), "v2 differs"
p = hf_hub_download("org/repo", "config.json", revision="refs/pr/1")
assert read(p) == b'{"pr": 1}', "refs/pr/1 differs"

# A whole snapshot (repo_info + paginated tree listing), then pinned by commit.
snap = snapshot_download("org/repo")
for rel in ["config.json", "model.Q4_K_M.gguf", "sub/tokenizer.json"]:
    assert read(os.path.join(snap, rel)) == read(os.path.join(repo_dir, rel)), f"snapshot {rel} differs"
assert not os.path.exists(os.path.join(snap, "fakehub.json")), "settings leaked into the snapshot"
info = HfApi().model_info("org/repo", files_metadata=True)
assert len(info.sha) == 40
lfs = {s.rfilename: s.lfs for s in info.siblings}
assert lfs["model.Q4_K_M.gguf"].sha256 == sha256(os.path.join(repo_dir, "model.Q4_K_M.gguf"))
pinned = snapshot_download("org/repo", revision=info.sha)
assert os.path.basename(pinned) == info.sha

# paths-info (POST) and refs, as mirrors such as olah and llama.cpp use them.
api = HfApi()
entries = {e.path: e for e in api.get_paths_info("org/repo", ["model.Q4_K_M.gguf", "sub", "missing.bin"])}
assert set(entries) == {"model.Q4_K_M.gguf", "sub"}, entries
assert entries["model.Q4_K_M.gguf"].lfs.sha256 == sha256(os.path.join(repo_dir, "model.Q4_K_M.gguf"))
assert type(entries["sub"]).__name__ == "RepoFolder"
refs = api.list_repo_refs("org/repo")
branches = {b.name: b.target_commit for b in refs.branches}
assert branches["main"] == info.sha and "v2" in branches, branches

# Tokens, gating and errors.
# (Errors first: once a file is cached, the client falls back to it when the Hub refuses.)
expect(RepositoryNotFoundError, lambda: hf_hub_download("org/private", "config.json", token=False))
p = hf_hub_download("org/private", "config.json", token="hf_repo_token")
assert read(p) == b"{}"
expect(GatedRepoError, lambda: hf_hub_download("org/gated", "w.gguf", token=False))
p = hf_hub_download("org/gated", "w.gguf", token="hf_global")
assert read(p) == read(os.path.join(root, "hf", "org", "gated", "w.gguf"))
expect(RepositoryNotFoundError, lambda: hf_hub_download("org/nope", "x.json", token=False))
expect(RevisionNotFoundError, lambda: hf_hub_download("org/repo", "config.json", revision="nope"))
expect(EntryNotFoundError, lambda: hf_hub_download("org/repo", "missing.json"))

print("OK")
