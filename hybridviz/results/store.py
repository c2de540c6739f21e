"""The results store: the only code that opens, writes, stages, swaps, upgrades or validates an evaluation folder
(format.py names its files) or a result bundle's files.

- reading: `read_metrics` (one way of meeting a damaged metrics.json: ResultsError naming it), `ModelResult` (an
  evaluation's figures in either encoding), `pair_values`, `evaluation_folders`, `bundle_evaluations`,
  `read_training_record` (a bundle unit's training record: its learning curve);
- writing: `write_outputs` (evaluate.py, metrics.json last), `write_report` (a metrics.json alone: mkqa-nq);
- staging and swapping (the grid): `staging_folder` / `refresh_folder` / `pending_folder` hold a new evaluation
  beside the old one (or where none is yet) until `swap_in` puts it in place whole; `remove_pending` drops what an
  evaluation that never finished left;
- progress: `write_progress` / `read_progress`, a running grid's per-unit states (progress.json), `progress_rows`
  / `describe_progress` (them in words, for the Study page and the driver's log);
- upgrading: `compact_folder` converts a folder's text or older compact files, checked to read back the same.
"""

from __future__ import annotations

import functools
import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridviz.fileio import atomic_write_bytes, atomic_write_text, compact_json, read_jsonl, write_json_atomic
from hybridviz.results import codec
from hybridviz.results.codec import CompactPerQuery
from hybridviz.results.format import (COMPACT_NAME, COMPACT_VERSION, LAYOUTS, MANIFEST, METRICS, PAIRS_NAME,
                                      PENDING, PER_QUERY_COLUMN, PROGRESS, RECORDS, REFRESH, RETIRED, RETRAINED,
                                      SETTINGS_CSV, STAGED, SUMMARY, SUMMARY_CSV, TEXT_FILES, TRAINING_RECORD,
                                      ResultsError, check_report)
from hybridviz.tasks import Corpus

# ------------------------------------------------------------------------------------------------ metrics.json


def read_metrics(folder: Path) -> dict:
    """An evaluation folder's metrics.json, or ResultsError naming the damaged file."""
    path = Path(folder) / METRICS
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is damaged or unreadable ({exc}).") from None
    return check_report(report, path)


def is_evaluated(folder: Path) -> bool:
    """True when `folder` holds a complete evaluation (metrics.json is written last)."""
    return (Path(folder) / METRICS).exists()


def write_report(folder: Path, report: dict, compact: bool = False) -> None:
    """metrics.json alone (an evaluation without per-query files, such as mkqa-nq's); `compact` in a bundle."""
    write_json_atomic(Path(folder) / METRICS, check_report(report, Path(folder) / METRICS), compact=compact)


def evaluation_folders(root: Path, depth: int | None = None) -> list[Path]:
    """The evaluation folders under `root`, in path order: at any depth, or `depth` 1 its subfolders only. A
    staged folder (<task>.partial/, .refresh/, .old/: not yet, or no longer, in place) is not a result."""
    found = Path(root).glob(f"*/{METRICS}") if depth == 1 else Path(root).rglob(METRICS)
    return [p.parent for p in sorted(found) if not p.parent.name.endswith(STAGED)]


def task_evaluations(folder: Path) -> list[tuple[Path, dict]]:
    """(evaluation folder, metrics) of each task folder in `folder` (a bundle's models/<label>/, a run's
    evaluations/), by task name; a damaged metrics.json raises ResultsError."""
    return [(f, read_metrics(f)) for f in evaluation_folders(folder, depth=1)]


def recorded_fingerprints(folder: Path) -> set[str]:
    """The model fingerprints the task evaluations in `folder` recorded."""
    return {m.get("model", {}).get("fingerprint") for _, m in task_evaluations(folder)} - {None}


def finished_evaluations(root: Path) -> list[dict]:
    """{"path", "report"} of each evaluation folder directly under `root`, newest first; a damaged one as {"path",
    "error"}."""
    out = []
    for path in sorted(Path(root).glob(f"*/{METRICS}"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            out.append({"path": str(path.parent), "report": read_metrics(path.parent)})
        except ResultsError as exc:
            out.append({"path": str(path.parent), "error": str(exc)})
    return out


# ------------------------------------------------------------------------------------------------ bundle files


def read_manifest(bundle: Path) -> dict:
    """A bundle's manifest.json ({} for a new bundle), or ResultsError naming the damaged file."""
    path = Path(bundle) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is damaged or unreadable ({exc}).") from None
    if not isinstance(manifest, dict):
        raise ResultsError(f"{path} is damaged or unreadable (not a manifest object).")
    return manifest


def write_manifest(bundle: Path, manifest: dict) -> None:
    write_json_atomic(Path(bundle) / MANIFEST, manifest)


def write_progress(bundle: Path, progress: dict) -> None:
    """progress.json: a running grid's units and their states ({"executor", "updated", "units": {label: {"state",
    "node", "device", "attempts", "error"}}}); written by the grid's driver only, like the manifest."""
    write_json_atomic(Path(bundle) / PROGRESS, progress)


def read_progress(bundle: Path) -> dict:
    """A bundle's progress.json ({} where no grid has run into it since progress was recorded)."""
    try:
        return json.loads((Path(bundle) / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}


def describe_progress(entry: dict) -> str:
    """One unit's progress in words: "running on vm (node 6187c9…, cpu, attempt 2)", "failed: …"."""
    state = entry.get("state", "queued")
    if state == "running":
        where = [f"node {entry['node_id'][:6]}…" if entry.get("node_id") else None, entry.get("device"),
                 f"attempt {entry['attempt']}" if entry.get("attempt", 1) > 1 else None]
        where = [w for w in where if w]
        return f"running on {entry.get('host', '?')}" + (f" ({', '.join(where)})" if where else "")
    if state == "failed":
        return f"failed: {entry.get('error', 'unknown error')}"
    return state


def progress_rows(bundle: Path) -> dict[str, dict]:
    """{label: {"state", "where", "error", ...}} from a bundle's progress.json ({} when none), for the Study page
    (here, not beside the executors that write it: reading it must not import the grid's training stack)."""
    units = read_progress(bundle).get("units", {})
    return {label: {**entry, "where": describe_progress(entry) if entry.get("state") == "running" else
                    entry.get("host", "")} for label, entry in units.items()}


def read_summary(bundle: Path) -> dict:
    """A bundle's summary.json ({} before the first summary)."""
    path = Path(bundle) / SUMMARY
    return json.loads(path.read_text()) if path.exists() else {}


def write_summary_files(bundle: Path, summary: dict, csv_text: str) -> None:
    """summary.json and its table summary.csv."""
    write_json_atomic(Path(bundle) / SUMMARY, summary)
    atomic_write_text(Path(bundle) / SUMMARY_CSV, csv_text)


def read_training_config(bundle: Path, label: str) -> dict:
    """models/<label>/training/config.json ({} for the base and other untrained units)."""
    path = unit_folder(bundle, label) / "training" / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_training_record(bundle: Path, label: str) -> dict | None:
    """models/<label>/training/ (TRAINING_RECORD) parsed: {"config", "status", "validation", "probes",
    "train_log", "pool"}; None where the unit has no training record (the base, a training-free method). A
    damaged config.json or status.json raises ResultsError naming it; a JSONL line cut short is skipped (as the
    run registry reads them) and an absent or unreadable validation_pool.json is None."""
    folder = unit_folder(bundle, label) / "training"
    if not folder.is_dir():
        return None
    record: dict = {}
    for key, name in (("config", "config.json"), ("status", "status.json")):
        path = folder / name
        try:
            value = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ResultsError(f"{path} is damaged or unreadable ({exc}).") from None
        if not isinstance(value, dict):
            raise ResultsError(f"{path} is damaged or unreadable (not a JSON object).")
        record[key] = value
    for key, name in (("validation", "validation.jsonl"), ("probes", "probes.jsonl"),
                      ("train_log", "train_log.jsonl")):
        record[key] = read_jsonl(folder / name)
    try:
        record["pool"] = json.loads((folder / "validation_pool.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        record["pool"] = None
    return record


def sweep_choice(model: str, root: Path | None = None) -> tuple[dict, Path]:
    """The learning rate and warm-up that a model's held-out sweep chose ({} where it has none) and the sweep's
    file: cache/reference/lr-sweep for me5-small, lr-sweep-<model> for the others (`sweep --model <m> --out ...`).
    A damaged file counts as no sweep."""
    from hybridviz.data import paths

    root = Path(root or paths.REFERENCE_DIR)
    path = root / ("lr-sweep" if model == "me5-small" else f"lr-sweep-{model}") / "sweep.json"
    try:
        chosen = json.loads(path.read_text()).get("chosen") or {}
    except (OSError, ValueError, AttributeError):
        return {}, path
    return {k: chosen[k] for k in ("learning_rate", "warmup_steps") if k in chosen}, path


def unit_folder(bundle: Path, label: str) -> Path:
    """models/<label>/: a unit's evaluations, one folder per task, and its training record."""
    return Path(bundle) / "models" / label


def staging_folder(bundle: Path, label: str) -> Path:
    """models/<label>.retrained/: a unit being evaluated anew on a retrained checkpoint, swapped in whole."""
    return Path(bundle) / "models" / f"{label}{RETRAINED}"


def refresh_folder(folder: Path) -> Path:
    """<task>.refresh/ beside an evaluation folder: its stale evaluation being redone, swapped in once complete."""
    return Path(folder).with_name(Path(folder).name + REFRESH)


def pending_folder(folder: Path) -> Path:
    """<task>.partial/ beside an evaluation folder: a new evaluation being written, swapped in once complete (an
    evaluation cut short, its process killed, leaves no folder that looks like a result)."""
    return Path(folder).with_name(Path(folder).name + PENDING)


def remove_pending(folder: Path) -> list[str]:
    """Remove the <task>.partial/ folders of the unit folder `folder` (evaluations that never finished); returns
    their names."""
    found = sorted(p for p in Path(folder).glob(f"*{PENDING}") if p.is_dir()) if Path(folder).is_dir() else []
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in found]


def fresh_folder(folder: Path) -> Path:
    """`folder` emptied (what an interrupted staging left is removed) and created."""
    shutil.rmtree(folder, ignore_errors=True)
    Path(folder).mkdir(parents=True)
    return Path(folder)


def swap_in(replacement: Path, folder: Path) -> None:
    """`replacement` takes the place of `folder` (if any): the old one moved aside, the new renamed in, the old
    removed; the old stays whole until the new is in place."""
    retired = folder.with_name(folder.name + RETIRED)
    shutil.rmtree(retired, ignore_errors=True)
    if folder.exists():
        folder.rename(retired)
    replacement.rename(folder)
    shutil.rmtree(retired, ignore_errors=True)


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def copy_training_record(run_dir: Path, dest: Path) -> None:
    """The small files that describe a fine-tune (not its weights) go into the bundle (models/<label>/training)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_RECORD:
        if (Path(run_dir) / name).exists():
            shutil.copyfile(Path(run_dir) / name, dest / name)


def copy_layouts(src: Path, dest: Path) -> None:
    """The layouts of bundle `src` that bundle `dest` lacks (named by the digest of their arrays)."""
    (Path(dest) / LAYOUTS).mkdir(parents=True, exist_ok=True)
    for layout in sorted((Path(src) / LAYOUTS).glob("*.npz")):
        if not (Path(dest) / LAYOUTS / layout.name).exists():
            shutil.copy2(layout, Path(dest) / LAYOUTS / layout.name)


def copy_unit(src: Path, dest: Path, label: str) -> None:
    """models/<label>/ of bundle `src` into bundle `dest` (which must not hold it)."""
    (Path(dest) / "models").mkdir(parents=True, exist_ok=True)
    shutil.copytree(unit_folder(src, label), unit_folder(dest, label))


# ------------------------------------------------------------------------------------------------ npz files


def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ResultsError(f"{path} is damaged ({exc}).") from None


@functools.lru_cache(maxsize=32)
def _layout_arrays(path: str) -> dict[str, np.ndarray]:
    return load_npz(Path(path))


def load_with_layout(path: Path) -> dict[str, np.ndarray]:
    """An npz of an evaluation folder with the shared layout it names (found in a layouts/ folder above it)."""
    arrays = load_npz(path)
    name = codec.layout_name(arrays)
    if name is None:
        return arrays
    arrays.pop("layout")
    for parent in path.parents:
        candidate = parent / LAYOUTS / f"{name}.npz"
        if candidate.exists():
            return {**_layout_arrays(str(candidate)), **arrays}
    raise ResultsError(f"{path} names the layout {name}, which no layouts/ folder above it holds.")


def load_compact(path: Path) -> CompactPerQuery:
    return CompactPerQuery(load_with_layout(Path(path)), str(path))


def _with_shared_layout(arrays: dict[str, np.ndarray], layouts: Path, shared: set[str]) -> dict[str, np.ndarray]:
    """`arrays` with the keys in `shared` moved to layouts/<digest>.npz (written once) and named by "layout"."""
    return _store_layout(codec.split_layout(arrays, shared), layouts)


def _store_layout(split: tuple[str, dict, dict], layouts: Path) -> dict[str, np.ndarray]:
    name, layout, own = split
    path = Path(layouts) / f"{name}.npz"
    if not path.exists():
        atomic_write_bytes(path, codec.npz_bytes(layout))
    return own


def _compact_file_bytes(arrays: dict[str, np.ndarray], layouts: Path) -> bytes:
    return codec.npz_bytes(_store_layout(codec.compact_file_arrays(arrays), layouts))


def _compact_bytes(records: list[dict], setting_csv: str, layouts: Path) -> bytes:
    """per_query.npz from the text encoding's records and CSV (the settings go through the CSV's "%.6g", so both
    encodings hold the same figures); its layout goes to `layouts`."""
    return _compact_file_bytes(codec.compact_arrays(records, codec.setting_lines(setting_csv)), layouts)


# ------------------------------------------------------------------------------------------------ writing


def write_outputs(out_dir: Path, report: dict, rows: list[dict], corpus: Corpus,
                  setting_rows: dict[str, list[dict]] | None = None, layouts: Path | None = None,
                  pair_ap: dict[tuple[int, str], float] | None = None) -> None:
    """metrics.json, the per-query figures (per_query.jsonl for multi and per_query_settings.csv for all
    settings; with a bundle's `layouts` folder, the compact per_query.npz instead) and per_query_pairs.npz (AP per
    query and pool language, float16: significance per heatmap cell)."""
    out_dir = Path(out_dir)
    if pair_ap:
        pairs = codec.pair_arrays(pair_ap, corpus)
        if layouts is not None:
            pairs = _with_shared_layout(pairs, layouts, codec.PAIR_SHARED)
        atomic_write_bytes(out_dir / PAIRS_NAME, codec.npz_bytes(pairs))
    lines = codec.per_query_lines(rows, corpus)
    setting_text = "".join(codec.per_query_setting_lines(setting_rows or {}, corpus))
    if layouts is not None:
        write_compact(out_dir, lines, setting_text, layouts)
    else:
        atomic_write_text(out_dir / RECORDS, codec.records_text(lines))
        atomic_write_text(out_dir / SETTINGS_CSV, setting_text)
    # last: its presence marks a complete evaluation; compact in a bundle (git holds it)
    write_report(out_dir, report, compact=layouts is not None)


def _remove_text_files(folder: Path) -> None:
    for name in TEXT_FILES:
        for path in (folder / name, folder / f"{name}.gz"):
            path.unlink(missing_ok=True)


def write_compact(out_dir: Path, records: list[dict], setting_csv: str, layouts: Path) -> None:
    atomic_write_bytes(Path(out_dir) / COMPACT_NAME, _compact_bytes(records, setting_csv, layouts))
    _remove_text_files(Path(out_dir))


# ------------------------------------------------------------------------------------------------ upgrading


def compact_folder(folder: Path, layouts: Path) -> bool:
    """Convert an evaluation folder's per-query files (gzipped or plain text, or compact format 1) to the
    compact encoding with its layouts in `layouts`, after checking that they read back as before; False when
    there is nothing to convert."""
    folder = Path(folder)
    changed = _compact_metrics(folder)
    changed = _share_pairs_layout(folder, layouts) or changed
    records_text, setting_csv = open_text(folder, RECORDS), open_text(folder, SETTINGS_CSV)
    if records_text is None or setting_csv is None:
        return _upgrade_compact(folder, layouts) or changed
    try:
        records = codec.parse_records(records_text)
    except ResultsError as exc:
        raise ResultsError(f"{folder}: {exc}") from None
    expected = (codec.keyed(codec.text_table(setting_csv, records_text)),
                [codec.figures_rounded(x) for x in codec.text_records(records_text)])
    _replace_checked(folder / COMPACT_NAME, _compact_bytes(records, setting_csv, layouts), _compact_view, expected)
    _remove_text_files(folder)
    return True


def _replace_checked(path: Path, data: bytes, view, expected) -> None:
    """Write `data` as `path` only if `view` of it gives `expected` (what the old files gave); else nothing changes."""
    staged = path.with_name(path.name + ".tmp")
    atomic_write_bytes(staged, data)
    if json.dumps(view(staged), sort_keys=True) != json.dumps(expected, sort_keys=True):  # NaN equals NaN too
        staged.unlink()
        raise ResultsError(f"{path}: the converted file reads back differently; nothing changed.")
    staged.replace(path)


def _compact_view(path: Path):
    return load_compact(path).view()


def _pairs_view(path: Path):
    z = load_with_layout(path)
    return z["query_ids"].tolist(), z["pool_langs"].tolist(), z["ap"].astype(np.float64).tolist()


def _upgrade_compact(folder: Path, layouts: Path) -> bool:
    """per_query.npz of an older compact format (1: layout inline; 2: every figure stored) to the current one,
    checked to read back the same."""
    path = folder / COMPACT_NAME
    if not path.exists() or codec.compact_version(load_npz(path)) == COMPACT_VERSION:
        return False
    arrays = codec.with_derivable(load_with_layout(path))
    _replace_checked(path, _compact_file_bytes(arrays, layouts), _compact_view, _compact_view(path))
    return True


def _compact_metrics(folder: Path) -> bool:
    """metrics.json without indentation, checked to parse to the same report."""
    path = folder / METRICS
    report = read_metrics(folder)
    if path.read_text(encoding="utf-8") == compact_json(report):
        return False
    _replace_checked(path, compact_json(report).encode("utf-8"), lambda p: json.loads(p.read_text("utf-8")), report)
    return True


def _share_pairs_layout(folder: Path, layouts: Path) -> bool:
    path = folder / PAIRS_NAME
    if not path.exists() or "layout" in (arrays := load_npz(path)):
        return False
    shared = _with_shared_layout(arrays, layouts, codec.PAIR_SHARED)
    _replace_checked(path, codec.npz_bytes(shared), _pairs_view, _pairs_view(path))
    return True


# ------------------------------------------------------------------------------------------------ reading


def open_text(folder: Path, name: str) -> str | None:
    """`name` or `name.gz` in `folder` (bundles gzip their per-query files); None when neither exists."""
    if (folder / name).exists():
        return (folder / name).read_text(encoding="utf-8")
    if (folder / f"{name}.gz").exists():
        try:
            return gzip.decompress((folder / f"{name}.gz").read_bytes()).decode("utf-8")
        except (OSError, EOFError) as exc:
            raise ResultsError(f"{folder / name}.gz is damaged ({exc}).") from exc
    return None


@dataclass
class ModelResult:
    label: str
    group: str  # "base", "x-x-mono", "x-y", "hybrid", or "hybrid-a0.25" for the extra alpha points
    seed: int | None
    alpha: float | None
    task: str
    folder: Path
    metrics: dict

    def macro(self, setting: str, metric: str) -> float | None:
        res = self.metrics.get("settings", {}).get(setting, {})
        return res.get("macro", {}).get(metric)

    def compact(self) -> CompactPerQuery | None:
        """The folder's per_query.npz, decoded once (None for the text encoding)."""
        path = self.folder / COMPACT_NAME
        if not path.exists():
            return None
        cached = self.__dict__.get("_compact")
        if cached is None:
            cached = self.__dict__["_compact"] = load_compact(path)
        return cached

    def per_query(self, setting: str, metric: str) -> dict[str, float]:
        """query id -> value of `metric` in `setting` (mAP/MRR/nDCG@10 for all settings; bias for multi)."""
        compact = self.compact()
        if compact is not None:
            if metric in PER_QUERY_COLUMN:
                return dict(compact.settings.get(setting, {}).get(PER_QUERY_COLUMN[metric], {}))
            figures = compact.record_figures.get(metric)
            return {} if setting != "multi" or figures is None else dict(zip(compact.record_ids, figures))
        if metric in PER_QUERY_COLUMN:
            text = open_text(self.folder, SETTINGS_CSV)
            return {} if text is None else codec.text_column(text, setting, PER_QUERY_COLUMN[metric])
        if setting != "multi":
            return {}
        return {line["query_id"]: float(line[metric]) for line in self.per_query_lines()}

    def relevant_ids(self) -> dict[str, list[str]]:
        """query id -> the candidate ids of its relevant items, in either encoding (clusters of the statistics)."""
        compact = self.compact()
        if compact is not None:
            return compact.relevant_ids()
        return {line["query_id"]: [rel["candidate_id"] for rel in line["relevant"]] for line in self.per_query_lines()}

    def per_query_table(self) -> dict[tuple[str, str], dict[str, float]]:
        """(setting, metric) -> {query id: value} for every per-query figure, each file parsed once (what
        `per_query` gives one (setting, metric) at a time)."""
        compact = self.compact()
        if compact is not None:
            return compact.table()
        return codec.text_table(open_text(self.folder, SETTINGS_CSV), open_text(self.folder, RECORDS))

    def per_query_lines(self, figures_only: bool = False) -> list[dict]:
        """per_query.jsonl's records; `figures_only` leaves out each record's list of relevant items."""
        compact = self.compact()
        if compact is not None:
            return compact.figure_records() if figures_only else [dict(r) for r in compact.records]
        return codec.text_records(open_text(self.folder, RECORDS), figures_only)


def pair_values(folder) -> tuple[list[str], list[str], np.ndarray] | None:
    """(query ids, pool languages, AP[query, pool language]) from an evaluation folder's per_query_pairs.npz."""
    path = Path(folder) / PAIRS_NAME
    if not path.exists():
        return None
    z = load_with_layout(path)
    return [str(q) for q in z["query_ids"]], [str(x) for x in z["pool_langs"]], z["ap"].astype(np.float64)
