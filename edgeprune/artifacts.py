"""Where trial artefacts (pruned models, exports) go: a local folder or any fsspec
URL (s3://, gs://, a mounted NFS path), so Ray workers on other machines can
write them without a shared file system. Files are written atomically."""
from __future__ import annotations

from pathlib import Path

import fsspec

from .diskspace import FULL_ERRNOS, disk_full_error


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = str(root).rstrip("/")

    def uri(self, relpath: str) -> str:
        return f"{self.root}/{relpath}"

    def put_bytes(self, relpath: str, data: bytes) -> str:
        uri = self.uri(relpath)
        fs, path = fsspec.core.url_to_fs(uri)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = path + ".tmp"
        try:
            with fs.open(tmp, "wb") as f:
                f.write(data)
        except OSError as e:
            try:
                fs.rm(tmp)              # half a file: room for the next try
            except OSError:
                pass
            if e.errno in FULL_ERRNOS and "://" not in self.root.removeprefix("file://"):
                raise disk_full_error(Path(path).parent, needed=len(data)) from None
            raise
        fs.mv(tmp, path)  # readers never see a half-written file
        return uri

    def __getstate__(self):
        return {"root": self.root}

    def __setstate__(self, state):
        self.root = state["root"]


def read_bytes(uri: str) -> bytes:
    with fsspec.open(uri, "rb") as f:
        return f.read()


def exists(uri: str) -> bool:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.exists(path)
