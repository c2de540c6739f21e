"""Retrieval tasks: queries, a candidate pool and relevance, for the monolingual, cross-lingual and multilingual
settings of every benchmark.

A `Corpus` holds all queries and candidates of a task; relevance is by *group* (a parallel set: a question id,
an MKQA example id). A query is relevant to every candidate whose groups contain the query's group, except
itself where queries are their own candidates (mkqa-queries). A `Slice` is one retrieval problem: which queries,
which pool, and the positions of each query's relevant candidates in that pool.

Settings:
- mono: queries in X against the pool of language X, for each X;
- cross: queries in X against the pool of language Y != X, for every ordered pair;
- multi: all queries against one pool of every language (LAReQA).
Queries with no relevant candidate in a slice's pool are left out of that slice (their count is reported).

Tasks:
- xquad-r, mlqa-r: questions against the sentences of the LAReQA files.
- mkqa-queries: parallel-query retrieval; the pool is the queries themselves (one per example and language),
  relevant = the same example's query in the other languages; a query's own entry is removed from its ranking.
  The mono setting has no relevant candidate by construction (the only same-language item is the query itself)
  and is reported as not applicable.
- mkqa-answers: answer retrieval; one candidate per distinct (language, answer text); a candidate is relevant to
  every example whose answers in that language include the text (relevance by example id), so a string shared by
  several examples is one candidate, never several copies. Yes/no examples are dropped. Identical strings in
  different languages stay separate candidates and score identically. Without more, a string that is the same
  in several languages ("2017", most names) would be a cross-lingual hit for free — string matching, not
  retrieval. So (protocol version 2) a query's copies of its own answers in other languages are removed from
  its ranking and from its relevant set: cross-lingual relevance counts only candidates whose text differs from
  every answer text in the query's language, and rank distance runs over those language-specific items.
- mkqa-mteb: MTEB's MKQARetrieval protocol (build_mkqa_mteb_corpus).
- beir:<folder>: a custom evaluation set in the BEIR layout (data/beir.py; build_beir_corpus): relevance is the
  qrels' (score > 0), per query; `lang` defines the settings as for XQuAD-R; a query's `group` (its translations)
  is its parallel group and its statistics cluster (query id "<lang>:<group>").
MKQA examples are those complete in every selected language (queries; and answers for mkqa-answers).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from hybridviz.errors import EmptyPool, UnknownName

TASKS = ("xquad-r", "mlqa-r", "mkqa-queries", "mkqa-answers", "mkqa-mteb")
SETTINGS = ("mono", "cross", "multi")


# 2: a query's string-identical answers in other languages no longer count (see the module docstring)
MKQA_ANSWERS_PROTOCOL = 2

# benchmarks in the order pages offer them: the paper's first, the near-floor pooled answers last
TASK_ORDER = ["xquad-r", "mkqa-mteb", "mkqa-queries", "mkqa-answers", "mkqa-answers-v1"]

MKQA_ALL = ["ar", "de", "en", "es", "fi", "fr", "he", "it", "ja", "km", "ko", "ms", "pl", "ru", "sv", "tr",
            "zh_cn"]

# What every model is evaluated on. MKQA slices keep one model's evaluation within minutes on 2 cores:
# parallel queries over the 1,000 examples that have all 17 languages; answers over a fixed seeded sample of
# 1,000 answerable examples in the 12 fully covered languages.
DEFAULT_EVALUATIONS = [
    {"task": "xquad-r", "languages": None, "limit": None},
    {"task": "mkqa-queries", "languages": MKQA_ALL, "limit": None},
    {"task": "mkqa-answers", "languages": None, "limit": 1000},
    # MTEB's MKQARetrieval protocol: every language with answers, monolingual (answer strings as documents)
    {"task": "mkqa-mteb", "languages": None, "limit": None},
]


def is_seen(lang: str, seen: list[str]) -> bool:
    """Whether a benchmark language was a training language ("zh_cn" of MKQA is MLQA-R's "zh")."""
    return lang.split("_")[0] in {s.split("_")[0] for s in seen}


@dataclass
class Corpus:
    task: str
    languages: list[str]
    query_ids: list[str]
    query_langs: list[str]
    query_texts: list[str]
    query_groups: list[str]
    cand_ids: list[str]
    cand_langs: list[str]
    cand_texts: list[str]
    cand_groups: list[frozenset[str]]
    candidate_kind: str = "passage"  # the encoder prefix for candidates ("query" when queries are the pool)
    exclude_self: bool = False
    exclude_string_copies: bool = False  # mkqa-answers: see the module docstring
    files: dict[str, str] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    # per query, its relevant candidate positions when relevance is given per query (beir:) rather than by group
    query_relevant: list[list[int]] | None = None

    def __post_init__(self):
        self._by_group: dict[str, list[int]] = defaultdict(list)
        for i, groups in enumerate(self.cand_groups):
            for g in groups:
                self._by_group[g].append(i)
        self._cand_pos = {cid: i for i, cid in enumerate(self.cand_ids)}
        self.queries_by_lang: dict[str, list[int]] = defaultdict(list)
        for i, lang in enumerate(self.query_langs):
            self.queries_by_lang[lang].append(i)
        self.cands_by_lang: dict[str, list[int]] = defaultdict(list)
        for i, lang in enumerate(self.cand_langs):
            self.cands_by_lang[lang].append(i)
        self._by_text: dict[str, list[int]] = defaultdict(list)
        if self.exclude_string_copies:
            for i, text in enumerate(self.cand_texts):
                self._by_text[text].append(i)

    def string_copies(self, query: int) -> set[int]:
        """Candidates in other languages whose text equals one of the query's relevant texts in its own language
        (empty unless `exclude_string_copies`)."""
        if not self.exclude_string_copies:
            return set()
        lang = self.query_langs[query]
        relevant = self.relevant_candidates(query)
        own_texts = {self.cand_texts[c] for c in relevant if self.cand_langs[c] == lang}
        return {c for text in own_texts for c in self._by_text.get(text, ()) if self.cand_langs[c] != lang}

    def relevant_candidates(self, query: int) -> list[int]:
        """Global candidate positions relevant to query `query` (over the whole corpus)."""
        if self.query_relevant is not None:
            return self.query_relevant[query]
        rel = self._by_group.get(self.query_groups[query], [])
        if self.exclude_self:
            own = self._cand_pos.get(self.query_ids[query])
            rel = [c for c in rel if c != own]
        return rel

    def counts(self) -> dict:
        per_lang = defaultdict(lambda: {"queries": 0, "candidates": 0})
        for lang in self.query_langs:
            per_lang[lang]["queries"] += 1
        for lang in self.cand_langs:
            per_lang[lang]["candidates"] += 1
        return {"queries": len(self.query_ids), "candidates": len(self.cand_ids),
                "groups": len(set(self.query_groups)), "per_language": dict(sorted(per_lang.items()))}


@dataclass
class Slice:
    setting: str
    query_lang: str  # "*" in the multilingual setting
    pool_lang: str  # "*" in the multilingual setting
    queries: np.ndarray  # global query positions
    pool: np.ndarray  # global candidate positions
    relevant: list[np.ndarray]  # per query: positions *within pool*
    dropped: int = 0  # queries without any relevant candidate in this pool
    own: np.ndarray | None = None  # per query: its own position in the pool, -1 if absent (mkqa-queries)
    # per query: pool positions removed from its ranking (mkqa-answers: copies of its own answer strings)
    excluded: list[np.ndarray] | None = None


def make_slice(corpus: Corpus, setting: str, query_lang: str, pool_lang: str) -> Slice:
    q_all = range(len(corpus.query_ids)) if query_lang == "*" else corpus.queries_by_lang.get(query_lang, [])
    pool = np.arange(len(corpus.cand_ids)) if pool_lang == "*" else \
        np.array(corpus.cands_by_lang.get(pool_lang, []), dtype=np.int64)
    local = {int(c): j for j, c in enumerate(pool)}
    kept, relevant, own, excluded = [], [], [], []
    for q in q_all:
        copies = corpus.string_copies(q)
        rel = [local[c] for c in corpus.relevant_candidates(q) if c in local and c not in copies]
        if rel:
            kept.append(q)
            relevant.append(np.array(sorted(rel), dtype=np.int64))
            if corpus.exclude_self:
                own.append(local.get(corpus._cand_pos.get(corpus.query_ids[q], -1), -1))
            excluded.append(np.array(sorted(local[c] for c in copies if c in local), dtype=np.int64))
    return Slice(setting, query_lang, pool_lang, np.array(kept, dtype=np.int64), pool, relevant,
                 dropped=len(q_all) - len(kept), own=np.array(own, dtype=np.int64) if corpus.exclude_self else None,
                 excluded=excluded if corpus.exclude_string_copies else None)


def slices(corpus: Corpus, setting: str) -> Iterator[Slice]:
    """Every retrieval problem of one setting (empty ones are skipped)."""
    if setting not in SETTINGS:
        raise UnknownName(f"Unknown setting {setting!r}; choose from {', '.join(SETTINGS)}.")
    langs = corpus.languages
    pairs = {"mono": [(x, x) for x in langs], "cross": [(x, y) for x in langs for y in langs if x != y],
             "multi": [("*", "*")]}[setting]
    for query_lang, pool_lang in pairs:
        s = make_slice(corpus, setting, query_lang, pool_lang)
        if len(s.queries) and len(s.pool):
            yield s


def setting_applicable(corpus: Corpus, setting: str) -> str | None:
    """None when the setting can be evaluated, else the reason it cannot."""
    if setting == "mono" and corpus.task == "mkqa-queries":
        return ("not applicable: in parallel-query retrieval the only same-language candidate of a query is "
                "the query itself, which is excluded")
    if setting in ("cross", "multi") and corpus.task == "mkqa-mteb":
        return ("not applicable: MTEB's MKQARetrieval is monolingual (each language's questions against that "
                "language's answer strings)")
    if setting == "cross" and len(corpus.languages) < 2:
        return "not applicable: needs at least two languages"
    return None


# ------------------------------------------------------------------------------------------------ builders


def _sample_groups(groups: list[str], limit: int | None, seed: int) -> set[str] | None:
    if not limit:
        return None
    if limit < 1:
        raise UnknownName(f"--limit must be a positive number of parallel groups, not {limit}.")
    unique = sorted(set(groups))
    rng = np.random.default_rng(seed)
    return set(rng.choice(unique, size=min(limit, len(unique)), replace=False).tolist())


def _sample_paragraphs(data, limit: int, seed: int) -> tuple[set[str], set[str]]:
    """A seeded sample of whole paragraphs holding at least `limit` question groups: (groups, paragraphs).

    Question groups and the paragraphs ("<lang>:<paragraph index>") that hold their answers are joined into
    connected parts (in XQuAD-R, one paragraph in every language with its questions); parts are taken in a seeded
    order until `limit` groups are in. Every sentence of a taken paragraph stays a candidate, so each sampled
    question meets its own paragraph's other sentences, as in the whole pool, in a pool a fraction of its size."""
    from hybridviz.data.splits import linked_components

    paragraph = {s.id: f"p:{s.id.rsplit(':', 1)[0]}" for s in data.sentences}
    root = linked_components([(paragraph[s.id], f"q:{g}") for s in data.sentences for g in s.groups],
                             paragraph.values())
    parts: dict[str, set[str]] = defaultdict(set)
    for node, r in root.items():
        parts[r].add(node)

    def order(nodes: set[str]) -> tuple:  # by the part's first question group (parts without one last)
        asked_here = [n[2:] for n in nodes if n.startswith("q:")]
        return (0, min(asked_here)) if asked_here else (1, min(nodes))

    asked = {q.group for q in data.questions}
    ordered = sorted(parts.values(), key=order)
    groups: set[str] = set()
    paragraphs: set[str] = set()
    for i in np.random.default_rng(seed).permutation(len(ordered)):
        found = {n[2:] for n in ordered[i] if n.startswith("q:")} & asked
        if not found:
            continue
        groups |= found
        paragraphs |= {n[2:] for n in ordered[i] if n.startswith("p:")}
        if len(groups) >= limit:
            break
    return groups, paragraphs


def build_lareqa_corpus(task: str, languages: list[str] | None, limit: int | None, seed: int,
                        sample_pool: bool = False) -> Corpus:
    from hybridviz.data.lareqa import load_lareqa

    data = load_lareqa(task, languages)
    sentences = data.sentences
    notes = {"limit": limit, "seed": seed} if limit else {}
    if limit and sample_pool:
        _sample_groups([], limit, seed)  # the same check of `limit`
        keep, paragraphs = _sample_paragraphs(data, limit, seed)
        sentences = [s for s in sentences if s.id.rsplit(":", 1)[0] in paragraphs]
        notes.update({"pool": "sampled paragraphs", "paragraphs": len(paragraphs)})
    else:
        keep = _sample_groups([q.group for q in data.questions], limit, seed)
    questions = [q for q in data.questions if keep is None or q.group in keep]
    return Corpus(
        task, data.languages,
        [q.id for q in questions], [q.lang for q in questions], [q.text for q in questions],
        [q.group for q in questions],
        [s.id for s in sentences], [s.lang for s in sentences], [s.text for s in sentences],
        [s.groups for s in sentences],
        files=data.files,
        notes=notes,
    )


def _mkqa_languages(data, languages: list[str] | None) -> list[str]:
    from hybridviz.data.lareqa import check_languages

    return check_languages(languages, data.languages, "MKQA") if languages else data.fully_covered_languages()


def _sample_examples(examples: list, limit: int | None, seed: int) -> list:
    keep = _sample_groups([ex.example_id for ex in examples], limit, seed)
    return [ex for ex in examples if keep is None or ex.example_id in keep]


def _mkqa_queries(examples: list, langs: list[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Query ids, languages, texts and groups (example ids): one query per example and language."""
    rows = [(f"{lang}:{ex.example_id}", lang, ex.queries[lang], ex.example_id) for ex in examples for lang in langs]
    ids, qlangs, texts, groups = (list(col) for col in zip(*rows)) if rows else ([], [], [], [])
    return ids, qlangs, texts, groups


def build_mkqa_queries_corpus(languages: list[str] | None, limit: int | None, seed: int) -> Corpus:
    from hybridviz.data.mkqa import load_mkqa

    data = load_mkqa()
    langs = _mkqa_languages(data, languages)
    examples = [ex for ex in data.examples if all(lang in ex.queries for lang in langs)]
    examples = _sample_examples(examples, limit, seed)
    ids, qlangs, texts, groups = _mkqa_queries(examples, langs)
    return Corpus("mkqa-queries", langs, ids, qlangs, texts, groups, list(ids), list(qlangs), list(texts),
                  [frozenset([g]) for g in groups], candidate_kind="query", exclude_self=True,
                  files=data.files,
                  notes={"source_format": data.source_format, "examples": len(examples), "limit": limit,
                         "seed": seed})


def build_mkqa_answers_corpus(languages: list[str] | None, limit: int | None, seed: int) -> Corpus:
    from hybridviz.data.mkqa import load_mkqa

    data = load_mkqa()
    langs = _mkqa_languages(data, languages)
    complete = [ex for ex in data.examples
                if all(lang in ex.queries and lang in ex.answers for lang in langs)]
    binary = [ex for ex in complete if ex.is_binary]
    examples = [ex for ex in complete if not ex.is_binary]
    examples = _sample_examples(examples, limit, seed)
    ids, qlangs, texts, groups = _mkqa_queries(examples, langs)
    cand_groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for ex in examples:
        for lang in langs:
            for answer in ex.answers[lang]:
                cand_groups[(lang, answer)].add(ex.example_id)
    keys = sorted(cand_groups)
    by_text = defaultdict(set)
    for lang, text in keys:
        by_text[text].add(lang)
    raw_answers = sum(len(ex.answers[lang]) for ex in examples for lang in langs)
    notes = {
        "source_format": data.source_format, "examples": len(examples),
        "binary_examples_dropped": len(binary),
        "answer_strings": raw_answers, "distinct_candidates": len(keys),
        "candidates_shared_by_several_examples": sum(len(g) > 1 for g in cand_groups.values()),
        "candidates_whose_text_occurs_in_another_language": sum(len(by_text[t]) > 1 for _, t in keys),
        "limit": limit, "seed": seed,
    }
    notes["protocol_version"] = MKQA_ANSWERS_PROTOCOL
    notes["string_copies"] = ("a query's copies of its own answer strings in other languages are removed from its "
                              "ranking and relevant set (cross / multi)")
    return Corpus("mkqa-answers", langs, ids, qlangs, texts, groups,
                  [f"{lang}:a{i}" for i, (lang, _) in enumerate(keys)], [lang for lang, _ in keys],
                  [text for _, text in keys], [frozenset(cand_groups[k]) for k in keys],
                  files=data.files, notes=notes, exclude_string_copies=True)


def build_mkqa_mteb_corpus(languages: list[str] | None, limit: int | None, seed: int) -> Corpus:
    """MTEB's MKQARetrieval, rule by rule (mkqa_protocols.md, MTEB MKQARetrieval.py @ee17a6e5):

    per language, a row is skipped when its query is missing or any of its answers has no text (unanswerable and
    long-answer rows); the corpus is every distinct answer text of the kept rows as written (aliases ignored;
    yes/no questions stay, so all "yes" questions share one "yes" document); identical query strings share one
    query whose relevant set is the union of their rows' answers; relevance grade 1. Queries and documents of
    one language only. On the official file this is the published protocol; on the offline subset the same
    rules run on the examples whose answers it has (see notes["per_language"] for the counts).
    """
    from hybridviz.data.lareqa import check_languages
    from hybridviz.data.mkqa import load_mkqa

    data = load_mkqa()
    answered = sorted({lang for ex in data.examples for lang in ex.raw_texts})
    langs = check_languages(languages, answered, "MKQA (languages with answers)") if languages else answered
    examples = _sample_examples(data.examples, limit, seed)
    q_ids, q_langs, q_texts, d_ids, d_langs, d_texts, d_groups = [], [], [], [], [], [], []
    per_language = {}
    for lang in langs:
        query_of: dict[str, str] = {}  # query text -> query id (identical strings merge, as in MTEB)
        doc_of: dict[str, int] = {}  # answer text -> position in this language's corpus
        relevant: dict[int, set[str]] = defaultdict(set)
        kept = skipped_query = skipped_answer = 0
        for ex in examples:
            texts = ex.raw_texts.get(lang)
            query = ex.queries.get(lang)
            if texts is None:  # no answers for this language in this file (offline subset)
                continue
            if query is None:
                skipped_query += 1
                continue
            if not texts or any(t is None for t in texts):
                skipped_answer += 1
                continue
            kept += 1
            # named by its first example: the language versions of one example form one cluster in the statistics
            qid = query_of.setdefault(query, f"{lang}:{ex.example_id}")
            for text in texts:
                pos = doc_of.setdefault(text, len(doc_of))
                relevant[pos].add(qid)
        for text, qid in query_of.items():
            q_ids.append(qid), q_langs.append(lang), q_texts.append(text)
        for text, pos in doc_of.items():
            d_ids.append(f"{lang}:d{pos}"), d_langs.append(lang), d_texts.append(text)
            d_groups.append(frozenset(relevant[pos]))
        per_language[lang] = {"rows_kept": kept, "rows_without_query": skipped_query,
                              "rows_with_an_answer_without_text": skipped_answer, "queries": len(query_of),
                              "corpus": len(doc_of),
                              "qrels": sum(len(g) for g in relevant.values())}
    notes = {"source_format": data.source_format, "protocol": "MTEB MKQARetrieval (monolingual, answer strings "
             "as documents, nDCG@10 main score)", "per_language": per_language, "limit": limit, "seed": seed,
             "offline_subset": data.source_format != "official"}
    return Corpus("mkqa-mteb", list(langs), q_ids, q_langs, q_texts, list(q_ids), d_ids, d_langs, d_texts,
                  d_groups, files=data.files, notes=notes)


def is_custom_task(task: str) -> bool:
    """Whether `task` names a custom evaluation set (`beir:<folder>`) rather than a built-in benchmark."""
    from hybridviz.data.beir import is_beir_task

    return is_beir_task(task)


def check_task(task: str) -> str:
    """`task` if it names a built-in benchmark or a valid custom set (validated whole, nothing encoded), else one
    clear error; for a CLI or a page to call before any work starts."""
    if is_custom_task(task):
        from hybridviz.data.beir import load_beir

        load_beir(task, checksums=False)
    elif task not in TASKS:
        raise UnknownName(f"Unknown task {task!r}; choose one of {', '.join(TASKS)} or beir:<folder>.")
    return task


def task_dir(task: str) -> str:
    """A folder name for `task`'s results: the name itself for a built-in benchmark; for `beir:<folder>`,
    "beir-<folder's name>-<6 hex of the name as given>" (a path is no folder name)."""
    if not is_custom_task(task):
        return task
    import hashlib
    import re

    spec = task[len("beir:"):].rstrip("/\\")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.replace("\\", "/").rsplit("/", 1)[-1]).strip("._") or "set"
    return f"beir-{name}-{hashlib.sha1(spec.encode()).hexdigest()[:6]}"


def build_beir_corpus(task: str, languages: list[str] | None, limit: int | None, seed: int) -> Corpus:
    """A custom evaluation set (`beir:<folder>`, data/beir.py), mirroring build_lareqa_corpus: `languages`
    restricts queries and pool alike; `limit` samples groups of queries (the pool stays whole). Query ids are
    "<lang>:<group>" (a query without group: its own _id), so that the statistics cluster a group's
    translations; candidate ids are the corpus' _id."""
    from hybridviz.data.beir import load_beir
    from hybridviz.data.lareqa import check_languages

    data = load_beir(task)
    langs = check_languages(languages, data.languages, task) if languages else data.languages
    keep_langs = set(langs)
    keep_groups = _sample_groups([g for g, lang in zip(data.query_groups, data.query_langs) if lang in keep_langs],
                                 limit, seed)
    cands = [i for i, lang in enumerate(data.doc_langs) if lang in keep_langs]
    new_pos = {old: new for new, old in enumerate(cands)}
    queries = [q for q, lang in enumerate(data.query_langs)
               if lang in keep_langs and (keep_groups is None or data.query_groups[q] in keep_groups)]
    relevant = [[new_pos[c] for c in sorted(data.relevant[q]) if c in new_pos] for q in queries]
    cand_groups: list[set[str]] = [set() for _ in cands]
    for q, rel in zip(queries, relevant):
        for c in rel:
            cand_groups[c].add(data.query_groups[q])
    notes = {**data.notes, "folder": str(data.folder)}
    if data.notes.get("graded"):
        notes["graded_relevance"] = "scores > 0 count as relevant (binary), as every metric here is binary"
    if limit:
        notes.update({"limit": limit, "seed": seed})
    return Corpus(
        task, list(langs),
        [f"{data.query_langs[q]}:{data.query_groups[q]}" for q in queries], [data.query_langs[q] for q in queries],
        [data.query_texts[q] for q in queries], [data.query_groups[q] for q in queries],
        [data.doc_ids[c] for c in cands], [data.doc_langs[c] for c in cands], [data.doc_texts[c] for c in cands],
        [frozenset(g) for g in cand_groups],
        files=data.files, notes=notes, query_relevant=relevant,
    )


def write_beir(corpus: Corpus, folder):
    """Write `corpus` as a BEIR folder (corpus.jsonl, queries.jsonl with each query's group, qrels/test.tsv with
    score 1 per relevant candidate), whole or not at all; `python -m hybridviz evaluate --task beir:<folder>`
    then gives the figures of the task itself. Refused for tasks whose rankings drop items per query
    (mkqa-queries' own query, mkqa-answers' string copies), which the layout cannot say."""
    from hybridviz.data.beir import write_beir_files

    if corpus.exclude_self or corpus.exclude_string_copies:
        raise UnknownName(f"Task {corpus.task} removes items from a query's ranking (its own entry or its answers' "
                          f"copies), which the BEIR layout cannot express; it cannot be written out faithfully.")
    queries = []
    for qid, lang, text, group in zip(corpus.query_ids, corpus.query_langs, corpus.query_texts, corpus.query_groups):
        queries.append({"_id": qid, "text": text, "lang": lang, "group": group})
    docs = [{"_id": cid, "text": text, "lang": lang}
            for cid, lang, text in zip(corpus.cand_ids, corpus.cand_langs, corpus.cand_texts)]
    qrels = [(qid, corpus.cand_ids[c], 1) for q, qid in enumerate(corpus.query_ids)
             for c in sorted(corpus.relevant_candidates(q))]
    return write_beir_files(folder, queries, docs, qrels)


def build_corpus(task: str, languages: list[str] | None = None, limit: int | None = None, seed: int = 0,
                 sample_pool: bool = False) -> Corpus:
    """The queries, candidates and relevance of `task` for `languages` (default: all the data fully covers).

    `limit` evaluates a seeded sample of that many parallel groups: for xquad-r/mlqa-r and beir:<folder> only the
    questions are sampled (the pool stays whole); for the MKQA tasks whole examples are (queries and pool).
    `sample_pool` (xquad-r/mlqa-r): sample whole paragraphs instead, their questions against their sentences only
    (a quick look, such as the lab's first figures; its figures are not those of the whole pool).
    """
    if task in ("xquad-r", "mlqa-r"):
        corpus = build_lareqa_corpus(task, languages, limit, seed, sample_pool)
    elif task == "mkqa-queries":
        corpus = build_mkqa_queries_corpus(languages, limit, seed)
    elif task == "mkqa-answers":
        corpus = build_mkqa_answers_corpus(languages, limit, seed)
    elif task == "mkqa-mteb":
        corpus = build_mkqa_mteb_corpus(languages, limit, seed)
    elif is_custom_task(task):
        corpus = build_beir_corpus(task, languages, limit, seed)
    else:
        raise UnknownName(f"Unknown task {task!r}; choose one of {', '.join(TASKS)} or beir:<folder>.")
    if not corpus.query_ids or not corpus.cand_ids:
        raise EmptyPool(f"Task {task} has an empty {'query set' if not corpus.query_ids else 'candidate pool'} "
                        f"for languages {', '.join(corpus.languages)}; choose other languages.")
    return corpus
