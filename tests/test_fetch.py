"""The download command: verified writes, and a clear failure offline."""

from __future__ import annotations

import io
import urllib.error

import pytest

from conftest import run_cli
from hybridviz.data.fetch import DOWNLOADS, FetchError, fetch


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_fetch_writes_verified_files(tmp_path, data_root):
    served = []

    def opener(url, timeout):
        served.append(url)
        lang = url.rsplit("/", 1)[1]
        return _Response((data_root / "xquad-r" / lang).read_bytes())

    paths = fetch("xquad-r", tmp_path, opener=opener)
    assert len(paths) == 11 and all(p.is_file() for p in paths)
    assert all(u.startswith("https://raw.githubusercontent.com/google-research-datasets/lareqa/") for u in served)
    # present with the right checksum: nothing downloaded again
    fetch("xquad-r", tmp_path, opener=lambda url, timeout: pytest.fail("re-downloaded"))


def test_checksum_mismatch_writes_nothing(tmp_path):
    with pytest.raises(FetchError, match="Checksum mismatch"):
        fetch("mkqa", tmp_path, opener=lambda url, timeout: _Response(b"not the file"))
    assert not list(tmp_path.rglob("*"))


def test_offline_fetch_is_a_clear_error(tmp_path):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    with pytest.raises(FetchError, match="offline"):
        fetch("mkqa", tmp_path, opener=offline)
    assert not list(tmp_path.rglob("*"))
    assert DOWNLOADS["mkqa"][0][0].startswith("https://github.com/apple/ml-mkqa/")


@pytest.mark.slow
def test_fetch_cli_offline_no_traceback():
    # an unreachable proxy makes the download fail the way an offline machine does, whatever the network here
    result = run_cli("fetch", "mkqa", env={"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"},
                     timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Could not download" in result.stderr and "mkqa.jsonl.gz" in result.stderr


def test_fetch_unknown_dataset():
    result = run_cli("fetch", "mlqa")
    assert result.returncode == 2 and "Nothing to fetch" in result.stderr
