"""Training pairs: parallel (question, answer sentence) pairs linked by question id.

Default source: MLQA-R dev (ar de en es hi vi zh). For a question id present in languages L, every ordered pair
(i, j) of L gives one pair: the question in language i with the answer sentence in language j. i == j pairs are
monolingual, i != j cross-lingual. XQuAD-R and MKQA are evaluation data and never training data by default.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass
class PairSet:
    """Parallel training pairs as columns (what a `datasets.Dataset` is built from)."""

    query: list[str] = field(default_factory=list)
    positive: list[str] = field(default_factory=list)
    query_lang: list[str] = field(default_factory=list)
    passage_lang: list[str] = field(default_factory=list)
    group: list[str] = field(default_factory=list)  # the parallel-set id (question id)
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.query)

    def add(self, query: str, positive: str, query_lang: str, passage_lang: str, group: str) -> None:
        self.query.append(query)
        self.positive.append(positive)
        self.query_lang.append(query_lang)
        self.passage_lang.append(passage_lang)
        self.group.append(group)

    @property
    def languages(self) -> list[str]:
        return sorted(set(self.query_lang) | set(self.passage_lang))

    def counts(self) -> dict:
        """Pairs per query language (mono / cross) and per ordered language pair."""
        per_pair = Counter(f"{q}-{p}" for q, p in zip(self.query_lang, self.passage_lang))
        per_lang = {lang: {"mono": per_pair.get(f"{lang}-{lang}", 0),
                           "cross": sum(n for k, n in per_pair.items()
                                        if k.split("-")[0] == lang and k.split("-")[1] != lang)}
                    for lang in self.languages}
        return {"pairs": len(self), "groups": len(set(self.group)), "per_language": per_lang,
                "per_pair": dict(sorted(per_pair.items()))}

    def columns(self) -> dict[str, list[str]]:
        return {"query": self.query, "positive": self.positive, "query_lang": self.query_lang,
                "passage_lang": self.passage_lang, "group": self.group}


def lareqa_pairs(benchmark: str = "mlqa-r", languages: list[str] | None = None) -> PairSet:
    """All (question_i, answer sentence_j) pairs of a LAReQA benchmark, parallel by question id."""
    from hybridviz.data.lareqa import load_lareqa

    data = load_lareqa(benchmark, languages)
    answer: dict[tuple[str, str], str] = {}
    for s in data.sentences:
        for group in s.groups:
            answer[(group, s.lang)] = s.text
    langs_of: dict[str, list[str]] = defaultdict(list)
    for lang_group in answer:
        langs_of[lang_group[0]].append(lang_group[1])
    pairs = PairSet(source=benchmark, files=data.files)
    for q in data.questions:
        for lang in sorted(langs_of[q.group]):
            pairs.add(q.text, answer[(q.group, lang)], q.lang, lang, q.group)
    return pairs
