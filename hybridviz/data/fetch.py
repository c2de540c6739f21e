"""`python -m hybridviz fetch xquad-r|mkqa`: download the official files into cache/data, checksum-verified.

Checksums: XQuAD-R files as released by LAReQA (snapshot 9bc8c7f, identical to the shared copies); the MKQA
release file as recorded by Hugging Face `datasets` (datasets/mkqa/dataset_infos.json).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from hybridviz.data.paths import DOWNLOAD_DIR
from hybridviz.errors import HybridvizError, UnknownName

_LAREQA_RAW = "https://raw.githubusercontent.com/google-research-datasets/lareqa/master/xquad-r/{lang}.json"
_XQUAD_R_SHA256 = {
    "ar": "c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d",
    "de": "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949",
    "el": "163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6",
    "en": "7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe",
    "es": "f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de",
    "hi": "ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872",
    "ru": "7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1",
    "th": "c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4",
    "tr": "f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94",
    "vi": "e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995",
    "zh": "80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed",
}

DOWNLOADS: dict[str, list[tuple[str, str, str]]] = {  # dataset -> [(url, relative path, sha256)]
    "xquad-r": [(_LAREQA_RAW.format(lang=lang), f"xquad-r/{lang}.json", sha)
                for lang, sha in _XQUAD_R_SHA256.items()],
    "mkqa": [("https://github.com/apple/ml-mkqa/raw/main/dataset/mkqa.jsonl.gz", "mkqa/mkqa.jsonl.gz",
              "f77ac6bf6306e98816c5c047880db71a3c67d2f1491b169896d63e9bb14ef3d3")],
}


class FetchError(HybridvizError):
    pass


def fetch(dataset: str, target: Path = DOWNLOAD_DIR, timeout: float = 30.0,
          opener=urllib.request.urlopen) -> list[Path]:
    """Download every file of `dataset` into `target`; a file already present with the right checksum is kept.

    Each file is written to a temporary name and renamed only after its checksum matched, so an interrupted or
    corrupted download never leaves a file that a loader would trust.
    """
    if dataset not in DOWNLOADS:
        raise UnknownName(f"Nothing to fetch for {dataset!r}; choose one of {', '.join(DOWNLOADS)}.")
    written = []
    for url, relative, expected in DOWNLOADS[dataset]:
        path = Path(target) / relative
        if path.is_file() and _sha256(path.read_bytes()) == expected:
            written.append(path)
            continue
        try:
            with opener(url, timeout=timeout) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"Could not download {url} ({reason}); this machine may be offline. "
                             f"Place the file at {path} by hand, or set HYBRIDVIZ_DATA to a folder that has it.")
        digest = _sha256(payload)
        if digest != expected:
            raise FetchError(f"Checksum mismatch for {url}: got sha256 {digest}, expected {expected}; "
                             f"nothing was written.")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(payload)
        os.replace(tmp.name, path)
        written.append(path)
    return written


def _sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()
