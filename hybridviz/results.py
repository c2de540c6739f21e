"""The evaluation results format: one module writes it and reads it.

An evaluation folder holds metrics.json (written last: its presence marks a complete evaluation), the per-query
figures, and per_query_pairs.npz (AP per query and pool language). The per-query figures come in one of two
encodings of the same records:
- text (an evaluation's own folder): per_query.jsonl (multilingual setting: AP, MRR, nDCG@10, bias and the rank
  of every relevant item) and per_query_settings.csv (AP / MRR / nDCG@10 per query in every setting);
- compact (result bundles, `layouts=<bundle>/layouts`; `python -m hybridviz compact-results` converts text
  folders): per_query.npz, the same records as arrays: ranks as integers, figures as float32 read back through
  the CSV's "%.6g" (the text files' 6 significant digits), so both encodings give the same numbers. What every
  model of a task shares (ids, languages, which queries each setting has, the relevant items) lies once in the
  bundle's layouts/<digest>.npz, named by the digest of its arrays; per_query_pairs.npz shares its query ids and
  pool languages the same way. Format 3 also leaves out the multilingual AP, RR, nDCG@10 and rank distance, which
  follow from the stored ranks (`DERIVABLE`). Per model: about a third of the gzipped text (sampler grid, 102
  evaluations: 156.3 MB of text, 94.6 MB in compact format 1, 53.6 MB in format 2 with its 2.0 MB of layouts;
  146 evaluations: 54.6 MB in format 2, 43.1 MB in 3), which is what lets result bundles stay within the
  repository's budget.
`evaluate.py` computes and calls `write_outputs`; bundles, the lab, heatmaps, the status page and the figures read
through `ModelResult`, `read_metrics` and `pair_values`.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridviz.errors import HybridvizError
from hybridviz.fileio import atomic_write_bytes, atomic_write_text, compact_json, write_json_atomic
from hybridviz.metrics import TOP_K_SHARE, block_metrics
from hybridviz.tasks import Corpus

PER_QUERY_COLUMN = {"mAP": "ap", "MRR": "rr", "nDCG@10": "ndcg@10"}


class ResultsError(HybridvizError):
    """An evaluation folder that is damaged."""


def read_metrics(folder: Path) -> dict:
    """An evaluation folder's metrics.json, or ResultsError naming the damaged file."""
    path = Path(folder) / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path} is damaged or unreadable ({exc}).") from None


# ------------------------------------------------------------------------------------------------ writing


def per_query_lines(rows: list[dict], corpus: Corpus) -> list[dict]:
    lines = []
    for r in rows:
        q = r["query"]
        copies = corpus.string_copies(q)  # mkqa-answers: its copies in other languages are not relevant
        rel_global = [c for c in corpus.relevant_candidates(q) if c not in copies]
        # positions local to the multilingual pool equal global ones: that pool is every candidate, in order
        line = {"query_id": corpus.query_ids[q], "query_lang": corpus.query_langs[q], "ap": r["mAP"],
                "rr": r["MRR"], "ndcg@10": r["nDCG@10"], "max_rank_distance": r["max_rank_distance"],
                f"same_lang@{TOP_K_SHARE}": r[f"same_lang@{TOP_K_SHARE}"],
                "relevant": [{"candidate_id": corpus.cand_ids[c], "lang": corpus.cand_langs[c], "rank": int(k)}
                             for c, k in zip(r["relevant"], r["ranks"])]}
        assert len(rel_global) == len(line["relevant"])
        lines.append(line)
    return lines


PER_QUERY_SETTING_COLUMNS = ("setting", "query_id", "query_lang", "ap", "rr", "ndcg@10")


def per_query_setting_lines(setting_rows: dict[str, list[dict]], corpus: Corpus) -> list[str]:
    """CSV of every setting's per-query AP / RR / nDCG@10 (cross: mean over the query's target languages)."""
    lines = [",".join(PER_QUERY_SETTING_COLUMNS) + "\n"]
    for setting, rows in setting_rows.items():
        for r in rows:
            q = r["query"]
            lines.append(f"{setting},{corpus.query_ids[q]},{corpus.query_langs[q]},"
                         f"{r['mAP']:.6g},{r['MRR']:.6g},{r['nDCG@10']:.6g}\n")
    return lines


def pair_matrix(pair_ap: dict[tuple[int, str], float], corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(query positions, AP[query, pool language]) for every query with a mono or cross value; NaN elsewhere."""
    queries = np.array(sorted({q for q, _ in pair_ap}), dtype=np.int64)
    row = {int(q): i for i, q in enumerate(queries)}
    col = {lang: j for j, lang in enumerate(corpus.languages)}
    ap = np.full((len(queries), len(corpus.languages)), np.nan, dtype=np.float16)
    for (q, lang), v in pair_ap.items():
        ap[row[q], col[lang]] = v
    return queries, ap


# the compact encoding (per_query.npz) --------------------------------------------------------------------------

COMPACT_NAME = "per_query.npz"
PAIRS_NAME = "per_query_pairs.npz"
# 3 leaves out the figures that follow from the ranks it stores; 2 stored every figure; 1 held its layout inline
# (all read; compact-results converts the older ones)
COMPACT_VERSION = 3
RECORD_FIGURES = ("max_rank_distance", f"same_lang@{TOP_K_SHARE}")  # per_query.jsonl's figures beyond the settings'
LAYOUTS = "layouts"  # a bundle's folder of shared layouts
# The multilingual setting's AP, RR and nDCG@10 and the rank distance are functions of the ranks of a query's
# relevant items, which the records keep (for the bias views): format 3 recomputes them on reading instead of
# storing them, a quarter of a bundle's per-query bytes, wherever the recomputed figures equal the stored ones
# bit for bit (all 173 evaluations of the committed bundles did).
DERIVABLE = {"multi.ap": "mAP", "multi.rr": "MRR", "multi.ndcg@10": "nDCG@10",
             "records.max_rank_distance": "max_rank_distance"}


def _is_figure(key: str) -> bool:
    """A per-model array of per_query.npz (the rest is the task's layout, the same for every model)."""
    return key in ("relevant.rank", "derived", "n_derived") or key.rsplit(".", 1)[-1] in (
        "ap", "rr", "ndcg@10", *RECORD_FIGURES)


def _six_digits(values: np.ndarray) -> np.ndarray:
    """Figures as the compact encoding stores them: float32 of the text encoding's "%.6g"."""
    return np.array([float(f"{x:.6g}") for x in np.asarray(values, dtype=np.float64).tolist()], dtype=np.float32)


def _derived_figures(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The DERIVABLE figures recomputed from the records' relevant ranks, in the stored order and encoding."""
    counts = arrays["relevant.count"].astype(np.int64)
    if not len(counts):
        return {}
    ranks = np.split(arrays["relevant.rank"].astype(np.int64), np.cumsum(counts)[:-1])
    figures = block_metrics(ranks, with_bias=True)
    out = {"records.max_rank_distance": _six_digits(figures["max_rank_distance"])}
    position = {q: i for i, q in enumerate(arrays["records.query"].tolist())}
    if "multi.query" in arrays and all(q in position for q in arrays["multi.query"].tolist()):
        order = np.array([position[q] for q in arrays["multi.query"].tolist()], dtype=np.int64)
        out.update({key: _six_digits(figures[name][order]) for key, name in DERIVABLE.items()
                    if key.startswith("multi.")})
    return out


def _without_derivable(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` less the figures the ranks give back exactly, named in "derived" (any other stays stored)."""
    if "derived" in arrays or "relevant.count" not in arrays:
        return arrays
    derived = _derived_figures(arrays)
    same = [key for key, values in derived.items() if key in arrays and np.array_equal(arrays[key], values)]
    if not same:
        return arrays
    out = {key: values for key, values in arrays.items() if key not in same}
    return {**out, "derived": _pack_strings(same), "n_derived": np.array(len(same))}


def _with_derivable(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of any format with every figure present (format 3's recomputed from the ranks)."""
    if "derived" not in arrays:
        return arrays
    names = _unpack_strings(arrays["derived"], int(arrays["n_derived"]))
    derived = _derived_figures(arrays)
    out = {key: values for key, values in arrays.items() if key not in ("derived", "n_derived")}
    return {**out, **{key: derived[key] for key in names}}


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _with_shared_layout(arrays: dict[str, np.ndarray], layouts: Path, shared: set[str]) -> dict[str, np.ndarray]:
    """`arrays` with the keys in `shared` moved to layouts/<digest>.npz (written once) and named by "layout"."""
    layout = {k: v for k, v in arrays.items() if k in shared}
    name = _digest(layout)
    path = Path(layouts) / f"{name}.npz"
    if not path.exists():
        atomic_write_bytes(path, _npz_bytes(layout))
    return {"layout": _pack_strings([name]), **{k: v for k, v in arrays.items() if k not in shared}}


@functools.lru_cache(maxsize=32)
def _layout_arrays(path: str) -> dict[str, np.ndarray]:
    return _load_npz(Path(path))


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise ResultsError(f"{path} is damaged ({exc}).") from None


def _load_with_layout(path: Path) -> dict[str, np.ndarray]:
    """An npz of an evaluation folder with the shared layout it names (found in a layouts/ folder above it)."""
    arrays = _load_npz(path)
    if "layout" not in arrays:
        return arrays
    name = _unpack_strings(arrays.pop("layout"), 1)[0]
    for parent in path.parents:
        candidate = parent / LAYOUTS / f"{name}.npz"
        if candidate.exists():
            return {**_layout_arrays(str(candidate)), **arrays}
    raise ResultsError(f"{path} names the layout {name}, which no layouts/ folder above it holds.")


def _pack_strings(values: list[str]) -> np.ndarray:
    """A string table as UTF-8 bytes joined by newlines (numpy's unicode arrays take 4 bytes a character)."""
    if any("\n" in v for v in values):
        raise ResultsError("an id contains a newline; it cannot enter the compact per-query table")
    return np.frombuffer("\n".join(values).encode("utf-8"), dtype=np.uint8)


def _unpack_strings(packed: np.ndarray, n: int) -> list[str]:
    return packed.tobytes().decode("utf-8").split("\n") if n else []


def _indexed(values: list[str]) -> tuple[list[str], np.ndarray]:
    """(table of distinct values in first-seen order, int32 index of each value into it)."""
    table: dict[str, int] = {}
    index = np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int32, count=len(values))
    return list(table), index


def _smallest_uint(values: np.ndarray) -> np.ndarray:
    top = int(values.max()) if len(values) else 0
    return values.astype(np.uint16 if top < 2 ** 16 else np.uint32 if top < 2 ** 32 else np.int64)


def compact_arrays(records: list[dict], setting_lines: list[tuple[str, str, str, float, float, float]]) -> dict:
    """per_query.npz's arrays from the records of per_query.jsonl and the rows (setting, query id, query language,
    AP, RR, nDCG@10) of per_query_settings.csv."""
    ids = [r["query_id"] for r in records] + [row[1] for row in setting_lines]
    langs = {}
    for r in records:
        langs.setdefault(r["query_id"], r["query_lang"])
    for row in setting_lines:
        langs.setdefault(row[1], row[2])
    query_ids, _ = _indexed(ids)
    position = {q: i for i, q in enumerate(query_ids)}
    lang_table, lang_index = _indexed([langs[q] for q in query_ids])
    arrays = {"version": np.array(COMPACT_VERSION), "n_queries": np.array(len(query_ids)),
              "query_ids": _pack_strings(query_ids), "query_lang_names": _pack_strings(lang_table),
              "n_query_langs": np.array(len(lang_table)), "query_lang": lang_index.astype(np.uint8)}
    settings = list(dict.fromkeys(row[0] for row in setting_lines))
    arrays["settings"] = _pack_strings(settings)
    arrays["n_settings"] = np.array(len(settings))
    for setting in settings:
        rows = [row for row in setting_lines if row[0] == setting]
        arrays[f"{setting}.query"] = np.array([position[row[1]] for row in rows], dtype=np.int32)
        for k, metric in enumerate(("ap", "rr", "ndcg@10")):
            arrays[f"{setting}.{metric}"] = np.array([row[3 + k] for row in rows], dtype=np.float32)
    arrays["records.query"] = np.array([position[r["query_id"]] for r in records], dtype=np.int32)
    # the records are the multilingual setting's queries: their AP, RR and nDCG@10 are that setting's, at the
    # CSV's six digits (per_query.jsonl's extra digits are no figure's input); stored apart only otherwise
    multi = {row[1] for row in setting_lines if row[0] == "multi"}
    own = ("ap", "rr", "ndcg@10") if any(r["query_id"] not in multi for r in records) else ()
    for metric in (*own, *RECORD_FIGURES):
        arrays[f"records.{metric}"] = np.array([r[metric] for r in records], dtype=np.float32)
    relevant = [rel for r in records for rel in r["relevant"]]
    cand_table, cand_index = _indexed([rel["candidate_id"] for rel in relevant])
    cand_lang_table, cand_lang_index = _indexed([rel["lang"] for rel in relevant])
    arrays.update({
        "relevant.count": _smallest_uint(np.array([len(r["relevant"]) for r in records], dtype=np.int64)),
        "relevant.rank": _smallest_uint(np.array([rel["rank"] for rel in relevant], dtype=np.int64)),
        "relevant.candidate": cand_index, "candidate_ids": _pack_strings(cand_table),
        "n_candidates": np.array(len(cand_table)),
        "relevant.lang": cand_lang_index.astype(np.uint8), "candidate_lang_names": _pack_strings(cand_lang_table),
        "n_candidate_langs": np.array(len(cand_lang_table)),
    })
    return arrays


def _as_text_figures(values: np.ndarray) -> list[float]:
    """float32 figures as the text encoding gives them: "%.6g" (six significant digits survive float32 exactly)."""
    return [float(f"{x:.6g}") for x in values.astype(np.float64).tolist()]


class CompactPerQuery:
    """The records of per_query.npz, decoded once: the settings' figures and the records' own figures at once,
    the records' lists of relevant items (most of the work) only when asked for."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        a = self._arrays = _with_derivable(arrays)
        self.query_ids = ids = _unpack_strings(a["query_ids"], int(a["n_queries"]))
        lang_names = _unpack_strings(a["query_lang_names"], int(a["n_query_langs"]))
        self.query_langs = [lang_names[i] for i in a["query_lang"].tolist()]
        self.settings: dict[str, dict[str, dict[str, float]]] = {}  # setting -> metric column -> {query: value}
        for setting in _unpack_strings(a["settings"], int(a["n_settings"])):
            queries = [ids[i] for i in a[f"{setting}.query"].tolist()]
            self.settings[setting] = {m: dict(zip(queries, _as_text_figures(a[f"{setting}.{m}"])))
                                      for m in ("ap", "rr", "ndcg@10")}
        self.record_ids = [ids[q] for q in a["records.query"].tolist()]
        self.record_langs = [self.query_langs[q] for q in a["records.query"].tolist()]
        self.record_figures = {m: (_as_text_figures(a[f"records.{m}"]) if f"records.{m}" in a
                                   else [self.settings["multi"][m][q] for q in self.record_ids])
                               for m in ("ap", "rr", "ndcg@10", *RECORD_FIGURES)}

    @classmethod
    def load(cls, path: Path) -> CompactPerQuery:
        a = _load_with_layout(Path(path))
        if int(a.get("version", -1)) not in (1, 2, COMPACT_VERSION):
            raise ResultsError(f"{path} has compact format {a.get('version')}, not {COMPACT_VERSION}.")
        return cls(a)

    def relevant_ids(self) -> dict[str, list[str]]:
        """query id -> the candidate ids of its relevant items (the multilingual records; no ranks decoded)."""
        a = self._arrays
        cands = _unpack_strings(a["candidate_ids"], int(a["n_candidates"]))
        counts = a["relevant.count"].astype(np.int64)
        ends = np.cumsum(counts)
        cand = a["relevant.candidate"].tolist()
        return {q: [cands[c] for c in cand[e - n:e]]
                for q, n, e in zip(self.record_ids, counts.tolist(), ends.tolist())}

    @functools.cached_property
    def records(self) -> list[dict]:
        """per_query.jsonl's records, relevant lists last."""
        a = self._arrays
        cands = _unpack_strings(a["candidate_ids"], int(a["n_candidates"]))
        cand_langs = _unpack_strings(a["candidate_lang_names"], int(a["n_candidate_langs"]))
        ends = np.cumsum(a["relevant.count"].astype(np.int64)).tolist()
        ranks, cand = a["relevant.rank"].tolist(), a["relevant.candidate"].tolist()
        cand_lang = a["relevant.lang"].tolist()
        records = []
        for i, (query, lang) in enumerate(zip(self.record_ids, self.record_langs)):
            start = ends[i - 1] if i else 0
            records.append({"query_id": query, "query_lang": lang,
                            **{m: values[i] for m, values in self.record_figures.items()},
                            "relevant": [{"candidate_id": cands[cand[j]], "lang": cand_langs[cand_lang[j]],
                                          "rank": ranks[j]} for j in range(start, ends[i])]})
        return records


def write_outputs(out_dir: Path, report: dict, rows: list[dict], corpus: Corpus,
                  setting_rows: dict[str, list[dict]] | None = None, layouts: Path | None = None,
                  pair_ap: dict[tuple[int, str], float] | None = None) -> None:
    """metrics.json, the per-query figures (per_query.jsonl for multi and per_query_settings.csv for all
    settings; with a bundle's `layouts` folder, the compact per_query.npz instead) and per_query_pairs.npz (AP per
    query and pool language, float16: significance per heatmap cell)."""
    if pair_ap:
        queries, ap = pair_matrix(pair_ap, corpus)
        pairs = {"query_ids": np.array([corpus.query_ids[q] for q in queries]),
                 "pool_langs": np.array(corpus.languages), "ap": ap}
        if layouts is not None:
            pairs = _with_shared_layout(pairs, layouts, {"query_ids", "pool_langs"})
        atomic_write_bytes(out_dir / PAIRS_NAME, _npz_bytes(pairs))
    lines = per_query_lines(rows, corpus)
    setting_text = "".join(per_query_setting_lines(setting_rows or {}, corpus))
    if layouts is not None:
        write_compact(out_dir, lines, setting_text, layouts)
    else:
        atomic_write_text(out_dir / "per_query.jsonl",
                          "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        atomic_write_text(out_dir / "per_query_settings.csv", setting_text)
    # last: its presence marks a complete evaluation; compact in a bundle (git holds it)
    write_json_atomic(out_dir / "metrics.json", report, compact=layouts is not None)


def _setting_lines(csv_text: str) -> list[tuple[str, str, str, float, float, float]]:
    return [(r["setting"], r["query_id"], r["query_lang"], float(r["ap"]), float(r["rr"]), float(r["ndcg@10"]))
            for r in csv.DictReader(io.StringIO(csv_text))]


def _compact_bytes(records: list[dict], setting_csv: str, layouts: Path) -> bytes:
    """per_query.npz from the text encoding's records and CSV (the settings go through the CSV's "%.6g", so both
    encodings hold the same figures); its layout goes to `layouts`."""
    return _compact_file_bytes(compact_arrays(records, _setting_lines(setting_csv)), layouts)


def _compact_file_bytes(arrays: dict[str, np.ndarray], layouts: Path) -> bytes:
    arrays = _without_derivable(arrays)
    shared = {k for k in arrays if k != "version" and not _is_figure(k)}
    return _npz_bytes(_with_shared_layout({**arrays, "version": np.array(COMPACT_VERSION)}, layouts, shared))


def _remove_text_files(folder: Path) -> None:
    for name in ("per_query.jsonl", "per_query_settings.csv"):
        for path in (folder / name, folder / f"{name}.gz"):
            path.unlink(missing_ok=True)


def write_compact(out_dir: Path, records: list[dict], setting_csv: str, layouts: Path) -> None:
    atomic_write_bytes(Path(out_dir) / COMPACT_NAME, _compact_bytes(records, setting_csv, layouts))
    _remove_text_files(Path(out_dir))


def compact_folder(folder: Path, layouts: Path) -> bool:
    """Convert an evaluation folder's per-query files (gzipped or plain text, or compact format 1) to the
    compact encoding with its layouts in `layouts`, after checking that they read back as before; False when
    there is nothing to convert."""
    folder = Path(folder)
    changed = _compact_metrics(folder)
    changed = _share_pairs_layout(folder, layouts) or changed
    records_text, setting_csv = open_text(folder, "per_query.jsonl"), open_text(folder, "per_query_settings.csv")
    if records_text is None or setting_csv is None:
        return _upgrade_compact(folder, layouts) or changed
    records = [json.loads(x) for x in records_text.splitlines() if x.strip()]
    for r in records:
        extra = set(r) - {"query_id", "query_lang", "ap", "rr", "ndcg@10", *RECORD_FIGURES, "relevant"}
        if extra:
            raise ResultsError(f"{folder}: per-query fields the compact format does not hold: {sorted(extra)}")
    text = ModelResult("", "", None, None, "", folder, {})
    expected_table, expected_lines = text.per_query_table(), text.per_query_lines()
    expected = (_keyed(expected_table), [_figures_rounded(x) for x in expected_lines])
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
    compact = CompactPerQuery.load(path)
    return _keyed(_table(compact)), [_figures_rounded(x) for x in compact.records]


def _pairs_view(path: Path):
    z = _load_with_layout(path)
    return z["query_ids"].tolist(), z["pool_langs"].tolist(), z["ap"].astype(np.float64).tolist()


def _keyed(table: dict) -> dict:
    return {"|".join(k): v for k, v in table.items()}


def _upgrade_compact(folder: Path, layouts: Path) -> bool:
    """per_query.npz of an older compact format (1: layout inline; 2: every figure stored) to the current one,
    checked to read back the same."""
    path = folder / COMPACT_NAME
    if not path.exists() or int(_load_npz(path).get("version", -1)) == COMPACT_VERSION:
        return False
    arrays = _with_derivable(_load_with_layout(path))
    _replace_checked(path, _compact_file_bytes(arrays, layouts), _compact_view, _compact_view(path))
    return True


def _compact_metrics(folder: Path) -> bool:
    """metrics.json without indentation, checked to parse to the same report."""
    path = folder / "metrics.json"
    text = path.read_text(encoding="utf-8")
    report = json.loads(text)
    if text == compact_json(report):
        return False
    _replace_checked(path, compact_json(report).encode("utf-8"), lambda p: json.loads(p.read_text("utf-8")), report)
    return True


def _share_pairs_layout(folder: Path, layouts: Path) -> bool:
    path = folder / PAIRS_NAME
    if not path.exists() or "layout" in (arrays := _load_npz(path)):
        return False
    shared = _with_shared_layout(arrays, layouts, {"query_ids", "pool_langs"})
    _replace_checked(path, _npz_bytes(shared), _pairs_view, _pairs_view(path))
    return True


def _figures_rounded(record: dict) -> dict:
    """A record with its figures at the text encoding's six significant digits (per_query.jsonl kept AP, RR and
    nDCG@10 at full precision; the settings' copies, which every statistic reads, have six digits)."""
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in record.items()}


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
            cached = self.__dict__["_compact"] = CompactPerQuery.load(path)
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
            text = open_text(self.folder, "per_query_settings.csv")
            if text is None:
                return {}
            col = PER_QUERY_COLUMN[metric]
            return {r["query_id"]: float(r[col]) for r in csv.DictReader(io.StringIO(text))
                    if r["setting"] == setting}
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
            return _table(compact)
        table: dict[tuple[str, str], dict[str, float]] = {}
        text = open_text(self.folder, "per_query_settings.csv")
        for row in csv.DictReader(io.StringIO(text or "")):
            for metric, col in PER_QUERY_COLUMN.items():
                table.setdefault((row["setting"], metric), {})[row["query_id"]] = float(row[col])
        for line in self.per_query_lines(figures_only=True):
            for metric, value in line.items():
                if metric not in ("query_id", "query_lang", "relevant", *PER_QUERY_COLUMN.values()):
                    table.setdefault(("multi", metric), {})[line["query_id"]] = float(value)
        return table

    def per_query_lines(self, figures_only: bool = False) -> list[dict]:
        """per_query.jsonl's records; `figures_only` leaves out each record's list of relevant items (most of
        the bytes: writing puts it last, so the rest parses alone, ~3x faster)."""
        compact = self.compact()
        if compact is not None:
            if figures_only:
                return [{"query_id": q, "query_lang": lang,
                         **{m: values[k] for m, values in compact.record_figures.items()}}
                        for k, (q, lang) in enumerate(zip(compact.record_ids, compact.record_langs))]
            return [dict(r) for r in compact.records]
        text = open_text(self.folder, "per_query.jsonl")
        lines = [x for x in text.splitlines() if x.strip()] if text else []
        if figures_only:
            return [json.loads(_without_relevant(x)) for x in lines]
        return [json.loads(x) for x in lines]


def _table(compact: CompactPerQuery) -> dict[tuple[str, str], dict[str, float]]:
    table = {(setting, metric): dict(by_metric[col]) for setting, by_metric in compact.settings.items()
             for metric, col in PER_QUERY_COLUMN.items()}
    for metric in RECORD_FIGURES:
        if compact.record_ids:
            table[("multi", metric)] = dict(zip(compact.record_ids, compact.record_figures[metric]))
    return table


RELEVANT_TAIL = ', "relevant": '


def _without_relevant(line: str) -> str:
    cut = line.find(RELEVANT_TAIL)
    return line if cut < 0 else line[:cut] + "}"


def pair_values(folder) -> tuple[list[str], list[str], np.ndarray] | None:
    """(query ids, pool languages, AP[query, pool language]) from an evaluation folder's per_query_pairs.npz."""
    path = Path(folder) / PAIRS_NAME
    if not path.exists():
        return None
    z = _load_with_layout(path)
    return [str(q) for q in z["query_ids"]], [str(x) for x in z["pool_langs"]], z["ap"].astype(np.float64)
