"""Pack the unit bundles of scripts/device_grid.sh into at most 7 tar files of < 15 MB under OUT (the device tool
brings back 8 files of 16 MiB), plus units.json: each unit's state and wall times.

    python scripts/pack_bundles.py WORK OUT        (WORK/<set-up>/<unit>/ as `experiment --only <unit>` wrote it)
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

LIMIT = 15_000_000
MAX_FILES = 7


def main(work: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    units, blobs = {}, []
    for manifest in sorted(work.glob("*/*/manifest.json")):
        folder = manifest.parent
        state = json.loads(manifest.read_text()).get("units", {})
        units[f"{folder.parent.name}/{folder.name}"] = state
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(folder, arcname=f"{folder.parent.name}/{folder.name}")
        blobs.append((f"{folder.parent.name}/{folder.name}", buffer.getvalue()))
    logs = io.BytesIO()
    with tarfile.open(fileobj=logs, mode="w:gz") as tar:
        if (work / "logs").is_dir():
            tar.add(work / "logs", arcname="logs")
    (out / "logs.tar.gz").write_bytes(logs.getvalue())
    packs: list[list[tuple[str, bytes]]] = []
    for name, blob in sorted(blobs, key=lambda b: -len(b[1])):  # first fit, largest first
        for pack in packs:
            if sum(len(b) for _, b in pack) + len(blob) <= LIMIT:
                pack.append((name, blob))
                break
        else:
            packs.append([(name, blob)])
    kept = packs[: MAX_FILES - 1]  # logs.tar.gz and units.json take the other two
    for i, pack in enumerate(kept):
        with tarfile.open(out / f"units-{i}.tar", "w") as tar:
            for name, blob in pack:
                info = tarfile.TarInfo(f"{name.replace('/', '__')}.tar")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    left = [name for pack in packs[MAX_FILES - 1 :] for name, _ in pack]
    (out / "units.json").write_text(json.dumps({"units": units, "left_behind": left}, indent=1))
    print(f"packed {sum(len(p) for p in kept)} unit folders into {len(kept)} files; left behind: {left or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
