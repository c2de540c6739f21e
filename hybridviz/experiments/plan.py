"""The analysis plan: what a bundle's statistics test, how, and what counts as "no difference", fixed in writing.

A plan is meant to be committed before the first unit of a bundle runs (`python -m hybridviz experiment ...
--plan-file PLAN.json` stores it in the bundle's manifest.json before any unit, with the commit that holds the
file); `summarise`, the marks and the verdict read it (`plan_of`) instead of restating constants. Bundles
written before plans existed get `DEFAULT_PLAN`, labelled "post hoc": its families and corrections are what
those bundles' statistics used, and the rules added since (marks capped by the permutation floor, paragraph
clusters, equivalence margins, the transductive family) were fixed after their runs.

A plan states:
- the families of tests and each one's correction: the primary family (named pairs x named (setting, metric)
  cells, per benchmark; Holm), the other sampler comparisons (secondary; Benjamini-Hochberg), comparisons with
  an inductive training-free method (training-free; BH) and comparisons with a *transductive* method (one fitted
  on the evaluation pool or on test questions, marked by `transductive_marker`, "@index"; BH, apart);
- the test behind the marks (`test`), and whether runs are paired by seed (`paired_by_seed`);
- the cluster level per benchmark (`cluster_level`): "question" (all language versions of one question) or
  "paragraph" (every question whose answer lies in one paragraph, linked across languages);
- equivalence margins per metric (`margins`), alpha and the power for minimum detectable effects;
- the stopping rule and the seeds, filled by whoever runs the grid and carried here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hybridviz.errors import HybridvizError

FAMILIES = ("primary", "secondary", "training-free", "transductive")
CORRECTIONS = ("holm", "bh")
CLUSTER_LEVELS = ("question", "paragraph")
MARGIN_KINDS = ("absolute", "relative to base")
MARKS_RULES = ("max(t, permutation)", "t")

PAIRING_REASON = (
    "Unpaired. Samplers share seeds and the order of training pairs by design, but a seed does not pair two runs: "
    "X-X-mono, X-Y and hybrid draw different batches from the same seed, so run i of one sampler is no closer to "
    "run i of another than to any other run. The test therefore compares the two sets of runs (two-sample), and "
    "the agreement count is unpaired: of the n_a x n_b run pairs, how many favour b. (A paired test would also "
    "have a worse floor: the exact sign-flip test of 5 seed pairs cannot go below 2/32 = 1/16, against 2/252 "
    "for the two-sample permutation of 5 + 5 runs.)")


@dataclass
class AnalysisPlan:
    name: str
    timing: str  # "post hoc" (written after the runs it is applied to) or "before the runs"
    description: str = ""
    primary_pairs: list[list[str]] = field(default_factory=lambda: [["x-x-mono", "hybrid"], ["x-y", "hybrid"]])
    primary_cells: list[list[str]] = field(default_factory=lambda: [["multi", "mAP"], ["multi", "max_rank_distance"]])
    # family -> {"correction": holm | bh, "scope": "benchmark" (corrected per benchmark) | "bundle", "what": text}
    families: dict[str, dict] = field(default_factory=lambda: {
        "primary": {"correction": "holm", "scope": "benchmark",
                    "what": "the primary pairs on the primary cells, per benchmark"},
        "secondary": {"correction": "bh", "scope": "bundle",
                      "what": "every other comparison among the base and the samplers"},
        "training-free": {"correction": "bh", "scope": "bundle",
                          "what": "comparisons involving an inductive training-free method (fitted on training-side "
                                  "texts) or a sampler + method"},
        "transductive": {"correction": "bh", "scope": "bundle",
                         "what": "comparisons involving a transductive method (fitted on the evaluation pool and "
                                 "a sample of the test questions: any method containing the transductive marker)"}})
    transductive_marker: str = "@index"
    test: dict = field(default_factory=lambda: {
        "unit": "the training run (seed)",
        "statistic": "delta of the headline figure, two-level bootstrap standard error (runs x clusters), t on the "
                     "runs' degrees of freedom",
        "marks": "max(t, permutation)",
        "marks_why": "with 5 + 5 runs the exact permutation test of run labels cannot go below 2/252 = .0079 "
                     "(3 + 3: 2/20 = .1); the t-based p rests on normality of 5 run means. The marks and the "
                     "verdict use the larger of the two p-values, adjusted in the family, so no mark claims more "
                     "than the permutation of the runs can carry. Where a side has one run (the base) there is "
                     "no permutation test and the t-based p stands alone.",
        "equivalence": "TOST: two one-sided t tests against ±margin with the comparison's own SE and df, adjusted "
                       "in the family. It is t-based only, not capped by a permutation floor (an exact permutation "
                       "TOST of 3 + 3 runs could not go below 1/20), so an equivalence shown with 3 seeds leans on "
                       "the normality of the run means as the t-based p does."})
    paired_by_seed: bool = False
    pairing: str = PAIRING_REASON
    cluster_level: dict[str, str] = field(default_factory=lambda: {
        "xquad-r": "paragraph", "mlqa-r": "paragraph", "mkqa-queries": "question", "mkqa-answers": "question",
        "mkqa-answers-v1": "question", "mkqa-mteb": "question"})
    cluster_why: str = (
        "XQuAD-R and MLQA-R pool every sentence of every paragraph, and the questions of one paragraph share its "
        "sentences as relevant items and distractors: their results are not independent, so the cluster is the "
        "connected set of questions sharing a paragraph (linked across languages through the question id). MKQA "
        "questions are independent examples: the cluster is the question (all its language versions).")
    # metric -> {"kind": absolute | relative to base, "value": float, "why": text}
    margins: dict[str, dict] = field(default_factory=lambda: {
        "mAP": {"kind": "absolute", "value": 0.01, "why": "one point of mAP: below what a reader of a results "
                "table would act on, and about the seed-to-seed standard deviation of a fine-tune here"},
        "nDCG@10": {"kind": "absolute", "value": 0.01, "why": "as mAP"},
        "MRR": {"kind": "absolute", "value": 0.01, "why": "as mAP"},
        "max_rank_distance": {
            "kind": "relative to base", "value": 0.02,
            "why": "2 % of the base model's max rank distance on the same benchmark and setting (about 24 ranks on "
                   "XQuAD-R for mE5-small, 11 for mUSE, 167 on MKQA answers): the pool size and the base's bias "
                   "differ by benchmark and encoder, so no number of ranks fits every cell; 2 % of the base is a "
                   "small fraction of what fine-tuning removes (mE5-small 1212 -> ~340 on XQuAD-R)"},
        "same_lang@10": {"kind": "absolute", "value": 0.02, "why": "two points of the same-language share of the "
                         "top 10"}})
    alpha: float = 0.05
    power: float = 0.8
    # filled by the grid's caller (criterion, eval_steps, patience, max_steps, validation set) and carried here
    stopping: dict = field(default_factory=dict)
    seeds: list = field(default_factory=list)

    # -------------------------------------------------------------------------------------------- reading

    def family(self, a: str, b: str, setting: str, metric: str, samplers) -> str:
        """The family of the comparison b − a on (setting, metric): transductive if either side is a transductive
        method, primary if the pair and cell are named, secondary among `samplers` (base and samplers), else
        training-free."""
        if self.is_transductive(a) or self.is_transductive(b):
            return "transductive"
        if [a, b] in self.primary_pairs and [setting, metric] in self.primary_cells:
            return "primary"
        return "secondary" if a in samplers and b in samplers else "training-free"

    def is_transductive(self, group: str) -> bool:
        return bool(self.transductive_marker) and self.transductive_marker in group

    def correction(self, family: str) -> str:
        return self.families[family]["correction"]

    def level(self, task: str) -> str:
        return self.cluster_level.get(task, "question")

    def margin(self, metric: str, base_value: float | None = None) -> float | None:
        """The equivalence margin of `metric` (None where the plan has none, or it is relative to a base the
        bundle lacks)."""
        m = self.margins.get(metric)
        if not m:
            return None
        if m["kind"] == "absolute":
            return float(m["value"])
        return None if base_value is None else abs(float(base_value)) * float(m["value"])

    def margin_text(self, metric: str) -> str:
        m = self.margins.get(metric)
        if not m:
            return "no margin"
        return f"±{m['value']:g}" if m["kind"] == "absolute" else f"±{100 * m['value']:g} % of the base's value"

    @property
    def label(self) -> str:
        """"post hoc plan" / "plan <name> (committed before the runs)"."""
        return "post hoc plan" if self.timing == "post hoc" else f"plan {self.name} (committed before the runs)"

    # -------------------------------------------------------------------------------------------- JSON

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> AnalysisPlan:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanError(f"analysis plan: unknown fields {unknown} (known: {sorted(known)})")
        plan = cls(**data)
        plan.validate()
        return plan

    @classmethod
    def from_json(cls, text: str) -> AnalysisPlan:
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, TypeError) as exc:
            raise PlanError(f"analysis plan: {exc}") from None

    def validate(self) -> None:
        problems = []
        if set(self.families) != set(FAMILIES):
            problems.append(f"families must be exactly {FAMILIES}, not {sorted(self.families)}")
        for name, fam in self.families.items():
            if fam.get("correction") not in CORRECTIONS:
                problems.append(f"family {name}: correction {fam.get('correction')!r} is not one of {CORRECTIONS}")
        if self.test.get("marks") not in MARKS_RULES:
            problems.append(f"test.marks {self.test.get('marks')!r} is not one of {MARKS_RULES}")
        for task, level in self.cluster_level.items():
            if level not in CLUSTER_LEVELS:
                problems.append(f"cluster level of {task}: {level!r} is not one of {CLUSTER_LEVELS}")
        for metric, m in self.margins.items():
            if m.get("kind") not in MARGIN_KINDS or not float(m.get("value", 0)) > 0:
                problems.append(f"margin of {metric}: needs kind in {MARGIN_KINDS} and a positive value")
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            problems.append("alpha and power must lie between 0 and 1")
        if self.paired_by_seed:
            problems.append("paired_by_seed: only the unpaired (two-sample) test is implemented")
        if problems:
            raise PlanError("analysis plan: " + "; ".join(problems))


class PlanError(HybridvizError):
    """An analysis plan that is damaged, or conflicts with the one a bundle already holds."""


DEFAULT_PLAN = AnalysisPlan(
    name="post-hoc-default", timing="post hoc",
    description="What the committed bundles (summary version 2) used implicitly: the primary family of hybrid vs "
                "X-X-mono and vs X-Y on multilingual mAP and max rank distance, Holm per benchmark; the other "
                "sampler comparisons and those with training-free methods Benjamini-Hochberg each. Not committed "
                "before those runs. The marks rule (capped by the permutation floor), the paragraph clusters of "
                "XQuAD-R, the equivalence margins and the transductive family were added after their runs "
                "(issue #31); seeds and stopping are read from the bundle's grid spec (a fixed step budget, no "
                "early stopping).")


def plan_mismatches(plan: AnalysisPlan, spec) -> list[str]:
    """Where a grid spec departs from what its plan declares (seeds; max_steps, eval_steps, patience and
    warmup_steps of the stopping rule, where the plan states them): a plan that does not describe its runs cannot
    vouch for them."""
    extra = spec.train_extra or {}
    actual = {"max_steps": spec.steps, "eval_steps": extra.get("eval_steps"), "patience": extra.get("patience"),
              "warmup_steps": spec.warmup_steps}
    out = [f"stopping.{key}: the plan says {plan.stopping[key]}, the grid has {value}"
           for key, value in actual.items() if key in plan.stopping and plan.stopping[key] != value]
    if plan.seeds and sorted(plan.seeds) != sorted(spec.seeds):
        out.append(f"seeds: the plan says {sorted(plan.seeds)}, the grid has {sorted(spec.seeds)}")
    return out


def plan_of(manifest: dict) -> AnalysisPlan:
    """The plan of a bundle: `analysis_plan` of its manifest.json where a plan was committed before its runs,
    else DEFAULT_PLAN (post hoc) with the bundle's seeds and its fixed step budget as the stopping rule."""
    record = manifest.get("analysis_plan")
    if record:
        return AnalysisPlan.from_dict(record["plan"])
    spec = manifest.get("spec", {})
    data = DEFAULT_PLAN.to_dict()
    data["seeds"] = list(spec.get("seeds", []))
    data["stopping"] = {"criterion": "none: a fixed step budget", "eval_steps": None, "patience": None,
                        "max_steps": spec.get("steps"), "validation": "none"}
    return AnalysisPlan(**data)


def plan_record(manifest: dict) -> dict:
    """{"plan": name, "label", "timing", "commit"}: what a summary says about the plan it read."""
    plan = plan_of(manifest)
    record = manifest.get("analysis_plan") or {}
    return {"name": plan.name, "label": plan.label, "timing": plan.timing, "commit": record.get("commit"),
            "file": record.get("file")}


def record_plan(manifest: dict, plan: AnalysisPlan | dict, commit: str | None = None, file: str | None = None) -> dict:
    """Store `plan` in `manifest` (in place; returns it). A manifest already holding a different plan is refused:
    a plan is fixed before the runs and never replaced under them; the same plan again is a no-op. `plan` may be
    a record {"plan": ..., "commit": ..., "file": ...} as `manifest.json` holds it."""
    if isinstance(plan, dict) and "plan" in plan:
        commit, file, plan = plan.get("commit", commit), plan.get("file", file), plan["plan"]
    plan = plan if isinstance(plan, AnalysisPlan) else AnalysisPlan.from_dict(plan)
    plan.validate()
    held = manifest.get("analysis_plan")
    if held:
        if held["plan"] != plan.to_dict():
            raise PlanError(f"the bundle already holds the analysis plan {held['plan'].get('name')!r} (commit "
                            f"{held.get('commit')}); a different plan cannot replace it. Start a new bundle "
                            "(--out) for a new plan.")
        return manifest
    if manifest.get("units"):
        raise PlanError("the bundle has units already: a plan must be stored before the first unit runs.")
    manifest["analysis_plan"] = {"plan": plan.to_dict(), "commit": commit, "file": file}
    return manifest


def read_plan_file(path: str | Path) -> tuple[AnalysisPlan, str | None]:
    """A plan file and the commit that last changed it (None where it is untracked or has uncommitted changes:
    then the plan cannot be shown to precede the runs)."""
    import subprocess

    path = Path(path)
    try:
        plan = AnalysisPlan.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read the plan file {path}: {exc}") from None

    def git(*args):
        try:
            done = subprocess.run(["git", *args], cwd=path.resolve().parent, capture_output=True, text=True,
                                  timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    changed = git("status", "--porcelain", "--", path.name)
    commit = git("log", "-1", "--format=%H", "--", path.name)
    return plan, (commit or None) if changed == "" else None


def plan_in(summary: dict) -> AnalysisPlan:
    """The plan a summary was computed under (stored in it since summary version 3), else DEFAULT_PLAN."""
    data = summary.get("plan")
    return AnalysisPlan.from_dict(data) if data else DEFAULT_PLAN
