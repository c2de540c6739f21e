"""Renderers of results to markdown, LaTeX and CSV, after ranx's `Report` (ranx/data_structures/report.py): an
object built once from the figures, with one method per output format.

A `Report` is a title and a list of sections; a section is a heading and blocks in order: tables (pandas
frames), paragraphs and bullet lists. What goes into a report is computed where the figures are (the headline,
verdict and robustness reports are assembled in experiments/reports.py); here they are only written out, so the
CLI and the pages print the same tables. `summary_table` and `mkqa_nq_table` render one metrics.json as text.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field


def _cell(v) -> str:
    return "" if v is None or v != v else f"{v:.3g}" if isinstance(v, float) else str(v)


def markdown_table(frame) -> str:
    """A frame as a GitHub markdown table (floats to 3 significant digits, None and NaN blank)."""
    cols = list(frame.columns)
    rows = [" | ".join(map(_cell, row)) for row in frame.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *("| " + r + " |" for r in rows)])


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def latex_table(frame) -> str:
    """A frame as a booktabs tabular (text left-aligned, cells as in `markdown_table`)."""
    cols = list(frame.columns)
    lines = [r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule",
             " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(_cell(v)) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"])


@dataclass
class Table:
    frame: object  # a pandas DataFrame
    caption: str | None = None


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]
    lead: str | None = None  # the sentence the list completes ("Verdict:")


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)

    def table(self, frame, caption: str | None = None) -> Section:
        self.blocks.append(Table(frame, caption))
        return self

    def paragraph(self, text: str) -> Section:
        self.blocks.append(Paragraph(text))
        return self

    def bullets(self, items: list[str], lead: str | None = None) -> Section:
        self.blocks.append(Bullets(list(items), lead))
        return self


@dataclass
class Report:
    """Sections of tables, paragraphs and bullet lists, written as markdown (`to_markdown`), LaTeX (`to_latex`)
    or CSV of its tables (`to_csv`); `preamble` and `legend` are paragraphs before and after the sections."""
    sections: list[Section] = field(default_factory=list)
    preamble: str | None = None
    legend: str | None = None
    level: int = 3  # markdown heading level of a section

    def section(self, title: str) -> Section:
        self.sections.append(Section(title))
        return self.sections[-1]

    def tables(self) -> list[tuple[str, object]]:
        return [(s.title, b.frame) for s in self.sections for b in s.blocks if isinstance(b, Table)]

    def __bool__(self) -> bool:
        return bool(self.sections or self.preamble)

    def to_markdown(self) -> str:
        """Blocks separated by a blank line; a section starts with its heading."""
        out = [] if self.preamble is None else [self.preamble]
        for s in self.sections:
            out += ["", "#" * self.level + " " + s.title]
            for b in s.blocks:
                if isinstance(b, Table):
                    out += ["", markdown_table(b.frame)] + ([] if b.caption is None else ["", b.caption])
                elif isinstance(b, Paragraph):
                    out += ["", b.text]
                else:
                    out += [""] + ([] if b.lead is None else [b.lead]) + [f"- {item}" for item in b.items]
        if self.legend is not None:
            out += ["", self.legend]
        text = "\n".join(out)
        return text if self.preamble is not None else text.lstrip("\n")

    def to_latex(self) -> str:
        out = [] if self.preamble is None else [latex_escape(self.preamble), ""]
        for s in self.sections:
            out += [r"\subsection*{" + latex_escape(s.title) + "}", ""]
            for b in s.blocks:
                if isinstance(b, Table):
                    out += [latex_table(b.frame), ""] + ([] if b.caption is None else [latex_escape(b.caption), ""])
                elif isinstance(b, Paragraph):
                    out += [latex_escape(b.text), ""]
                else:
                    out += ([] if b.lead is None else [latex_escape(b.lead)]) + [r"\begin{itemize}"]
                    out += [r"  \item " + latex_escape(item) for item in b.items] + [r"\end{itemize}", ""]
        if self.legend is not None:
            out += [latex_escape(self.legend), ""]
        return "\n".join(out).rstrip("\n") + "\n"

    def to_csv(self) -> str:
        """Every table of the report in one CSV: a "section" column, then the union of the tables' columns."""
        tables = self.tables()
        columns = list(dict.fromkeys(c for _, frame in tables for c in frame.columns))
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["section", *columns])
        for title, frame in tables:
            for row in frame.to_dict("records"):
                writer.writerow([title, *(_cell(row.get(c)) if isinstance(row.get(c), float) else
                                          ("" if row.get(c) is None else row.get(c)) for c in columns)])
        return buf.getvalue()


# ------------------------------------------------------------------------------------------------ one evaluation


def summary_table(report: dict) -> str:
    """Headline figures of one metrics.json: macro mAP per setting, and the multilingual bias figures."""
    lines = [f"{report['task']} | {report['model']['label']} | languages: {', '.join(report['languages'])}"]
    for setting, res in report["settings"].items():
        if "not_applicable" in res:
            lines.append(f"  {setting:<6} {res['not_applicable']}")
            continue
        m = res["macro"]
        line = f"  {setting:<6} mAP {m['mAP']:.4f}  R@1 {m['R@1']:.4f}  R@10 {m['R@10']:.4f}  " \
               f"nDCG@10 {m['nDCG@10']:.4f}  MRR {m['MRR']:.4f}"
        if setting == "multi":
            line += f"  | max rank distance {m['max_rank_distance']:.1f}  same-lang@10 {m['same_lang@10']:.3f}" \
                    f"  rank corr {res['mean_rank_correlation']['macro']:.3f}"
        lines.append(line)
    return "\n".join(lines)


def mkqa_nq_table(report: dict) -> str:
    """An mkqa-nq evaluation's hit rates (share of questions with an answer-containing passage in the top k) per
    language and macro-averaged, as text."""
    res = next(iter(report["settings"].values()))
    ks = [m for m in res["macro"]]
    lines = [f"mkqa-nq · {report['corpus']['passages']:,} passages ({report['corpus']['index']}) · "
             f"{report['model']['spec']}",
             "lang  " + "  ".join(f"{k:>8}" for k in ks) + "  questions"]
    for lang, v in res["per_language"].items():
        lines.append(f"{lang:<5} " + "  ".join(f"{v[k]:>8.3f}" for k in ks) + f"  {v['n_queries']:>9}")
    lines.append("macro " + "  ".join(f"{res['macro'][k]:>8.3f}" for k in ks))
    return "\n".join(lines)
