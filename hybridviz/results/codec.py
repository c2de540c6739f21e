"""The encodings of the per-query records (format.py names the files): bytes and text in, arrays and records
out. Nothing here opens a file: store.py reads and writes them.

- text: per_query.jsonl's records and per_query_settings.csv's rows (`per_query_lines`,
  `per_query_setting_lines`; `text_table` and `text_records` read them back);
- compact: per_query.npz, the same records as arrays (`compact_arrays`, decoded by `CompactPerQuery`): ranks as
  integers, figures as float32 read back through the CSV's "%.6g" (the text files' 6 significant digits), so both
  encodings give the same numbers. What every model of a task shares (ids, languages, which queries each setting
  has, the relevant items) is split off as a layout named by the digest of its arrays (`split_layout`), stored
  once per bundle; per_query_pairs.npz shares its query ids and pool languages the same way. Format 3 also leaves
  out the multilingual AP, RR, nDCG@10 and rank distance, which follow from the stored ranks (`DERIVABLE`). Per
  model: about a third of the gzipped text (sampler grid, 102 evaluations: 156.3 MB of text, 94.6 MB in compact
  format 1, 53.6 MB in format 2 with its 2.0 MB of layouts; 146 evaluations: 54.6 MB in format 2, 43.1 MB in 3),
  which is what lets result bundles stay within the repository's budget.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json

import numpy as np

from hybridviz.metrics import block_metrics
from hybridviz.results.format import (COMPACT_VERSION, COMPACT_VERSIONS, DERIVABLE, PER_QUERY_COLUMN,
                                      PER_QUERY_SETTING_COLUMNS, RECORD_FIELDS, RECORD_FIGURES, ResultsError)
from hybridviz.metrics import TOP_K_SHARE
from hybridviz.tasks import Corpus

PAIR_SHARED = {"query_ids", "pool_langs"}  # per_query_pairs.npz's arrays that every model of a task shares

# ------------------------------------------------------------------------------------------------ text


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


def per_query_setting_lines(setting_rows: dict[str, list[dict]], corpus: Corpus) -> list[str]:
    """CSV of every setting's per-query AP / RR / nDCG@10 (cross: mean over the query's target languages)."""
    lines = [",".join(PER_QUERY_SETTING_COLUMNS) + "\n"]
    for setting, rows in setting_rows.items():
        for r in rows:
            q = r["query"]
            lines.append(f"{setting},{corpus.query_ids[q]},{corpus.query_langs[q]},"
                         f"{r['mAP']:.6g},{r['MRR']:.6g},{r['nDCG@10']:.6g}\n")
    return lines


def records_text(lines: list[dict]) -> str:
    """per_query.jsonl's text (relevant lists last: `text_records(figures_only=True)` parses the rest alone)."""
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def pair_matrix(pair_ap: dict[tuple[int, str], float], corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(query positions, AP[query, pool language]) for every query with a mono or cross value; NaN elsewhere."""
    queries = np.array(sorted({q for q, _ in pair_ap}), dtype=np.int64)
    row = {int(q): i for i, q in enumerate(queries)}
    col = {lang: j for j, lang in enumerate(corpus.languages)}
    ap = np.full((len(queries), len(corpus.languages)), np.nan, dtype=np.float16)
    for (q, lang), v in pair_ap.items():
        ap[row[q], col[lang]] = v
    return queries, ap


def pair_arrays(pair_ap: dict[tuple[int, str], float], corpus: Corpus) -> dict[str, np.ndarray]:
    """per_query_pairs.npz's arrays: AP per query and pool language, float16 (significance per heatmap cell)."""
    queries, ap = pair_matrix(pair_ap, corpus)
    return {"query_ids": np.array([corpus.query_ids[q] for q in queries]),
            "pool_langs": np.array(corpus.languages), "ap": ap}


def setting_lines(csv_text: str) -> list[tuple[str, str, str, float, float, float]]:
    return [(r["setting"], r["query_id"], r["query_lang"], float(r["ap"]), float(r["rr"]), float(r["ndcg@10"]))
            for r in csv.DictReader(io.StringIO(csv_text))]


def parse_records(text: str | None) -> list[dict]:
    """per_query.jsonl's records, checked to hold only the fields the compact format keeps."""
    records = [json.loads(x) for x in (text or "").splitlines() if x.strip()]
    for r in records:
        extra = set(r) - set(RECORD_FIELDS)
        if extra:
            raise ResultsError(f"per-query fields the compact format does not hold: {sorted(extra)}")
    return records


RELEVANT_TAIL = ', "relevant": '


def _without_relevant(line: str) -> str:
    cut = line.find(RELEVANT_TAIL)
    return line if cut < 0 else line[:cut] + "}"


def text_records(text: str | None, figures_only: bool = False) -> list[dict]:
    """per_query.jsonl's records; `figures_only` leaves out each record's list of relevant items (most of the
    bytes: writing puts it last, so the rest parses alone, ~3x faster)."""
    lines = [x for x in text.splitlines() if x.strip()] if text else []
    if figures_only:
        return [json.loads(_without_relevant(x)) for x in lines]
    return [json.loads(x) for x in lines]


def text_column(settings_csv: str | None, setting: str, column: str) -> dict[str, float]:
    """query id -> `column` of per_query_settings.csv in `setting`."""
    return {r["query_id"]: float(r[column]) for r in csv.DictReader(io.StringIO(settings_csv or ""))
            if r["setting"] == setting}


def text_table(settings_csv: str | None, records: str | None) -> dict[tuple[str, str], dict[str, float]]:
    """(setting, metric) -> {query id: value} for every per-query figure of the text encoding."""
    table: dict[tuple[str, str], dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(settings_csv or "")):
        for metric, col in PER_QUERY_COLUMN.items():
            table.setdefault((row["setting"], metric), {})[row["query_id"]] = float(row[col])
    for line in text_records(records, figures_only=True):
        for metric, value in line.items():
            if metric not in ("query_id", "query_lang", "relevant", *PER_QUERY_COLUMN.values()):
                table.setdefault(("multi", metric), {})[line["query_id"]] = float(value)
    return table


def figures_rounded(record: dict) -> dict:
    """A record with its figures at the text encoding's six significant digits (per_query.jsonl kept AP, RR and
    nDCG@10 at full precision; the settings' copies, which every statistic reads, have six digits)."""
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in record.items()}


def keyed(table: dict) -> dict:
    return {"|".join(k): v for k, v in table.items()}


# ------------------------------------------------------------------------------------------------ npz


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:24]


def split_layout(arrays: dict[str, np.ndarray], shared: set[str]) -> tuple[str, dict, dict]:
    """(layout name, the layout's arrays, `arrays` less them naming the layout by "layout")."""
    layout = {k: v for k, v in arrays.items() if k in shared}
    name = digest(layout)
    return name, layout, {"layout": pack_strings([name]), **{k: v for k, v in arrays.items() if k not in shared}}


def layout_name(arrays: dict[str, np.ndarray]) -> str | None:
    return unpack_strings(arrays["layout"], 1)[0] if "layout" in arrays else None


def pack_strings(values: list[str]) -> np.ndarray:
    """A string table as UTF-8 bytes joined by newlines (numpy's unicode arrays take 4 bytes a character)."""
    if any("\n" in v for v in values):
        raise ResultsError("an id contains a newline; it cannot enter the compact per-query table")
    return np.frombuffer("\n".join(values).encode("utf-8"), dtype=np.uint8)


def unpack_strings(packed: np.ndarray, n: int) -> list[str]:
    return packed.tobytes().decode("utf-8").split("\n") if n else []


def _indexed(values: list[str]) -> tuple[list[str], np.ndarray]:
    """(table of distinct values in first-seen order, int32 index of each value into it)."""
    table: dict[str, int] = {}
    index = np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int32, count=len(values))
    return list(table), index


def _smallest_uint(values: np.ndarray) -> np.ndarray:
    top = int(values.max()) if len(values) else 0
    return values.astype(np.uint16 if top < 2 ** 16 else np.uint32 if top < 2 ** 32 else np.int64)


# ------------------------------------------------------------------------------------------------ compact


def is_figure(key: str) -> bool:
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


def without_derivable(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` less the figures the ranks give back exactly, named in "derived" (any other stays stored)."""
    if "derived" in arrays or "relevant.count" not in arrays:
        return arrays
    derived = _derived_figures(arrays)
    same = [key for key, values in derived.items() if key in arrays and np.array_equal(arrays[key], values)]
    if not same:
        return arrays
    out = {key: values for key, values in arrays.items() if key not in same}
    return {**out, "derived": pack_strings(same), "n_derived": np.array(len(same))}


def with_derivable(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of any format with every figure present (format 3's recomputed from the ranks)."""
    if "derived" not in arrays:
        return arrays
    names = unpack_strings(arrays["derived"], int(arrays["n_derived"]))
    derived = _derived_figures(arrays)
    out = {key: values for key, values in arrays.items() if key not in ("derived", "n_derived")}
    return {**out, **{key: derived[key] for key in names}}


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
              "query_ids": pack_strings(query_ids), "query_lang_names": pack_strings(lang_table),
              "n_query_langs": np.array(len(lang_table)), "query_lang": lang_index.astype(np.uint8)}
    settings = list(dict.fromkeys(row[0] for row in setting_lines))
    arrays["settings"] = pack_strings(settings)
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
        "relevant.candidate": cand_index, "candidate_ids": pack_strings(cand_table),
        "n_candidates": np.array(len(cand_table)),
        "relevant.lang": cand_lang_index.astype(np.uint8), "candidate_lang_names": pack_strings(cand_lang_table),
        "n_candidate_langs": np.array(len(cand_lang_table)),
    })
    return arrays


def compact_file_arrays(arrays: dict[str, np.ndarray]) -> tuple[str, dict, dict]:
    """per_query.npz in the current format from the arrays of any: (layout name, layout arrays, the file's own
    arrays naming the layout)."""
    arrays = without_derivable(arrays)
    shared = {k for k in arrays if k != "version" and not is_figure(k)}
    return split_layout({**arrays, "version": np.array(COMPACT_VERSION)}, shared)


def compact_version(arrays: dict[str, np.ndarray]) -> int:
    return int(arrays.get("version", -1))


def _as_text_figures(values: np.ndarray) -> list[float]:
    """float32 figures as the text encoding gives them: "%.6g" (six significant digits survive float32 exactly)."""
    return [float(f"{x:.6g}") for x in values.astype(np.float64).tolist()]


class CompactPerQuery:
    """The records of per_query.npz (its arrays with their layout's), decoded once: the settings' figures and the
    records' own figures at once, the records' lists of relevant items (most of the work) only when asked for."""

    def __init__(self, arrays: dict[str, np.ndarray], where: str = "per_query.npz"):
        if compact_version(arrays) not in COMPACT_VERSIONS:
            raise ResultsError(f"{where} has compact format {arrays.get('version')}, not {COMPACT_VERSION}.")
        a = self._arrays = with_derivable(arrays)
        self.query_ids = ids = unpack_strings(a["query_ids"], int(a["n_queries"]))
        lang_names = unpack_strings(a["query_lang_names"], int(a["n_query_langs"]))
        self.query_langs = [lang_names[i] for i in a["query_lang"].tolist()]
        self.settings: dict[str, dict[str, dict[str, float]]] = {}  # setting -> metric column -> {query: value}
        for setting in unpack_strings(a["settings"], int(a["n_settings"])):
            queries = [ids[i] for i in a[f"{setting}.query"].tolist()]
            self.settings[setting] = {m: dict(zip(queries, _as_text_figures(a[f"{setting}.{m}"])))
                                      for m in ("ap", "rr", "ndcg@10")}
        self.record_ids = [ids[q] for q in a["records.query"].tolist()]
        self.record_langs = [self.query_langs[q] for q in a["records.query"].tolist()]
        self.record_figures = {m: (_as_text_figures(a[f"records.{m}"]) if f"records.{m}" in a
                                   else [self.settings["multi"][m][q] for q in self.record_ids])
                               for m in ("ap", "rr", "ndcg@10", *RECORD_FIGURES)}

    def relevant_ids(self) -> dict[str, list[str]]:
        """query id -> the candidate ids of its relevant items (the multilingual records; no ranks decoded)."""
        a = self._arrays
        cands = unpack_strings(a["candidate_ids"], int(a["n_candidates"]))
        counts = a["relevant.count"].astype(np.int64)
        ends = np.cumsum(counts)
        cand = a["relevant.candidate"].tolist()
        return {q: [cands[c] for c in cand[e - n:e]]
                for q, n, e in zip(self.record_ids, counts.tolist(), ends.tolist())}

    def relevant_columns(self) -> dict:
        """The records' relevant items as columns, with no dict per item (a page's tables need no more): `record`
        (each item's position in record_ids), `candidate` and `lang` (indexes into the distinct `candidates` and
        `langs`) and `rank`, int64 arrays of one row per item."""
        a = self._arrays
        counts = a["relevant.count"].astype(np.int64)
        return {"record": np.repeat(np.arange(len(counts)), counts),
                "candidate": a["relevant.candidate"].astype(np.int64),
                "candidates": unpack_strings(a["candidate_ids"], int(a["n_candidates"])),
                "lang": a["relevant.lang"].astype(np.int64),
                "langs": unpack_strings(a["candidate_lang_names"], int(a["n_candidate_langs"])),
                "rank": a["relevant.rank"].astype(np.int64)}

    @functools.cached_property
    def records(self) -> list[dict]:
        """per_query.jsonl's records, relevant lists last."""
        a = self._arrays
        cands = unpack_strings(a["candidate_ids"], int(a["n_candidates"]))
        cand_langs = unpack_strings(a["candidate_lang_names"], int(a["n_candidate_langs"]))
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

    def figure_records(self) -> list[dict]:
        """The records without their relevant lists."""
        return [{"query_id": q, "query_lang": lang, **{m: values[k] for m, values in self.record_figures.items()}}
                for k, (q, lang) in enumerate(zip(self.record_ids, self.record_langs))]

    def table(self) -> dict[tuple[str, str], dict[str, float]]:
        """(setting, metric) -> {query id: value} for every per-query figure."""
        table = {(setting, metric): dict(by_metric[col]) for setting, by_metric in self.settings.items()
                 for metric, col in PER_QUERY_COLUMN.items()}
        for metric in RECORD_FIGURES:
            if self.record_ids:
                table[("multi", metric)] = dict(zip(self.record_ids, self.record_figures[metric]))
        return table

    def view(self):
        """What a conversion must leave unchanged: every figure, and every record at six digits."""
        return keyed(self.table()), [figures_rounded(x) for x in self.records]
