"""Can the champion still be trusted on a batch of new rows? One exit code, one page.

``make monitor INPUT=batch.csv [MODEL=champion]`` scores the batch with the
model's inference pipeline (as ``make predict`` does, chunk by chunk) and
checks, against the bounds of the ``monitoring`` section of
``metrics_policy.yaml``:

- data invariants: the raw columns the model reads, typed as prepare types
  them (a missing column refuses the batch; a value that is not a number
  counts against its column);
- input drift of every feature against the model's training split, and
  prediction drift of its scores and decisions against its test split
  (:mod:`..shared.drift`): the population stability index, the share of new
  categories, the rise of missing values;
- performance, when the batch carries the target: every metric of the
  policy, measured by the evaluate stage's own code, against the policy's
  bounds, beside the offline estimate on the test split;
- staleness: the days since the model's run was committed;
- numerical health: no score that is not a finite number, no batch whose
  scores collapsed to one value.

It writes ``reports/monitoring/<batch>.json`` and ``<batch>.html``, and a
line per batch in ``reports/monitoring/history.jsonl`` (the model card charts
it). The report is the same, byte for byte, when made again on the same day
(``SOURCE_DATE_EPOCH`` fixes the day). Exit status: 0 healthy, 1 an alert
fired (each is named), 2 the batch or the model could not be checked.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..shared import drift, inference, policy, registry
from ..shared.checks import meets
from ..shared.display import MISSING, listing, number, table
from ..shared.git import output, show_file
from ..shared.paths import (
    METRICS_PATH,
    MONITORING_DIR,
    PROJECT_ROOT,
    in_repository,
    shown,
)
from .arguments import REF_HELP, failed
from .predict import (
    EXAMPLES,
    PredictError,
    chunks,
    data_at,
    load_model,
    positions,
    sha256,
    typed,
)

HISTORY_FILE = "history.jsonl"
# The service (SERVICE=) gets the batch's first SAMPLE_ROWS rows, REQUESTS times.
SAMPLE_ROWS = 100
REQUESTS = 20
# Digits kept in the report: the same batch gives the same bytes.
DIGITS = 6


class MonitorError(Exception):
    """The batch or the model cannot be checked (reported in one line)."""


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, on what, its value and bound, and if it fired."""

    area: str
    subject: str
    value: float | None
    bound: str
    alert: bool
    note: str = ""


def rules(found: Mapping[str, Any]) -> dict[str, Any]:
    """The policy's ``monitoring`` section; a policy from before it is refused by name."""
    section = found.get("monitoring")
    if not section:
        raise MonitorError(
            "metrics_policy.yaml has no monitoring section: `copier update --trust` to "
            "0.11.0 or later appends it, or copy it from the bounds table of "
            "docs/architecture/monitoring.md"
        )
    return dict(section)


def as_of() -> datetime.date:
    """The day the report is made: ``SOURCE_DATE_EPOCH``'s when set, else today (UTC)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    now = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch.isdigit()
        else datetime.datetime.now(datetime.UTC)
    )
    return now.date()


def target_at(commit: str, root: Path) -> str | None:
    """``data.target`` as the ``params.yaml`` of ``commit`` names it."""
    target = data_at(commit, root).get("target")
    return str(target) if target else None


def offline_metrics(commit: str, root: Path) -> dict[str, float]:
    """The test split's metrics the evaluate stage committed with the model's run."""
    text = show_file(root, commit, METRICS_PATH)
    try:
        return policy.parse_metrics(text, f"{METRICS_PATH} at {commit[:12]}") if text else {}
    except policy.PolicyError:
        return {}


def dated(root: Path, *args: str) -> datetime.date | None:
    """The date git prints (``YYYY-MM-DD``) for ``args``, if any."""
    text = (output(root, *args) or "").strip()
    try:
        return datetime.date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


@dataclass
class Batch:
    """What one pass over the batch gathered."""

    rows: int
    columns: drift.Counter
    outputs: drift.Counter
    invalid: dict[str, tuple[int, list[str]]]
    not_finite: int
    low: float
    high: float
    target: pd.Series | None
    scored: pd.DataFrame | None
    sample: pd.DataFrame | None = None  # the first rows, raw, for the service
    expected: pd.DataFrame | None = None  # and what the pipeline made of them


def read_batch(source: Path, model: Any, target: str | None) -> Batch:
    """Score ``source`` chunk by chunk, counting it into the reference's bins.

    Raises:
        MonitorError: the model keeps no reference, the batch is empty, lacks
            a column, or holds labels the model does not know.
    """
    reference = drift.reference(model)
    if reference is None:
        raise MonitorError(
            "the model keeps no reference profile: it was trained before make monitor "
            "existed (0.11.0); run `make repro` and promote the new run"
        )
    columns = inference.columns(model)
    found = Batch(
        0,
        drift.Counter(reference["columns"]),
        drift.Counter(reference["outputs"]),
        {},
        0,
        math.inf,
        -math.inf,
        None,
        None,
    )
    targets, outputs = [], []
    try:
        for rows in chunks(source, columns):
            features, bad = typed(rows, columns, shown(source))
            if rows.empty:
                continue
            for name, wrong in bad.items():
                count, lines = found.invalid.get(name, (0, []))
                found.invalid[name] = (
                    count + int(wrong.sum()),
                    (lines + positions(wrong, found.rows))[:EXAMPLES],
                )
            scored = inference.predict(model, features)
            if found.sample is None:
                found.sample = rows[list(columns)].head(SAMPLE_ROWS)
                found.expected = scored.head(SAMPLE_ROWS)
            found.rows += len(rows)
            for name in columns:
                found.columns.add(features[name], name)
            for name in reference["outputs"]:
                found.outputs.add(scored[name], name)
            values = scored[inference.OUTPUTS[0]].to_numpy(dtype=float)
            finite = values[np.isfinite(values)]
            found.not_finite += int(values.size - finite.size)
            if finite.size:
                found.low, found.high = min(found.low, finite.min()), max(found.high, finite.max())
            if target is not None and target in rows.columns:
                targets.append(rows[target])
                outputs.append(scored)
    except PredictError as error:
        raise MonitorError(str(error)) from None
    if found.rows == 0:
        raise MonitorError(f"{shown(source)}: the batch has no rows")
    if targets:
        found.target = pd.concat(targets, ignore_index=True)
        found.scored = pd.concat(outputs, ignore_index=True)
        check_labels(found.target, model, shown(source), target or "")
    return found


def check_labels(labels: pd.Series, model: Any, source: str, column: str) -> None:
    """Refuse a target column with a blank, or a label the model does not know."""
    if labels.isna().any():
        lines = positions(labels.isna(), 0)
        raise MonitorError(
            f"{source}: column {column!r} is blank on line{'s' if len(lines) > 1 else ''} "
            f"{', '.join(lines[:EXAMPLES])}: label every row, or leave the column out"
        )
    known = getattr(model, "classes_", None)
    if known is None:
        if pd.to_numeric(labels, errors="coerce").isna().any():
            raise MonitorError(f"{source}: column {column!r} must hold numbers")
        return
    names = {str(label) for label in known}
    strange = sorted({str(label) for label in labels.unique()} - names)
    if strange:
        raise MonitorError(
            f"{source}: column {column!r} holds {listing(repr(label) for label in strange)}, "
            f"which the model does not know (its labels: {', '.join(sorted(names))})"
        )


def invariant_checks(batch: Batch) -> list[Check]:
    """A numeric column holding text: its rows are counted and the first lines named."""
    return [
        Check(
            "invariants",
            name,
            float(count),
            "0 rows",
            True,
            f"{count} rows hold no number (lines {', '.join(lines)})",
        )
        for name, (count, lines) in sorted(batch.invalid.items())
    ]


def drift_checks(batch: Batch, bounds: Mapping[str, Any]) -> tuple[list[Check], dict[str, Any]]:
    """Input drift of every feature; prediction drift of the scores and the decisions."""
    limit = float(bounds["psi"])
    found: list[Check] = []
    compared: dict[str, Any] = {"columns": {}, "outputs": {}}
    for name in batch.columns.profile:
        seen = batch.columns.compare(name)
        compared["columns"][name] = seen
        note = (
            f"mean {seen['mean']:.4g} (training {seen['mean_before']:.4g}, "
            f"{seen['shift_sd']:+.2f} sd)"
            if "mean" in seen
            else (
                f"new: {', '.join(seen['new_categories'])} ({seen['new_share']:.1%})"
                if seen["new_categories"]
                else ""
            )
        )
        found.append(
            Check("input drift", name, seen["psi"], f"PSI < {limit:g}", seen["psi"] >= limit, note)
        )
        if "new_share" in seen:
            bound = float(bounds["new_category_share"])
            if seen["new_share"] > bound:
                found.append(
                    Check(
                        "new categories",
                        name,
                        seen["new_share"],
                        f"<= {bound:g}",
                        True,
                        ", ".join(seen["new_categories"]),
                    )
                )
        rise = seen["missing"] - seen["missing_before"]
        if rise > float(bounds["missing_increase"]):
            found.append(
                Check(
                    "missing values",
                    name,
                    seen["missing"],
                    f"<= training's {seen['missing_before']:.3f} + {bounds['missing_increase']:g}",
                    True,
                )
            )
    for name in batch.outputs.profile:
        seen = batch.outputs.compare(name)
        compared["outputs"][name] = seen
        if name != "decision":
            found.append(
                Check(
                    "prediction drift",
                    name,
                    seen["psi"],
                    f"PSI < {limit:g}",
                    seen["psi"] >= limit,
                    f"mean {seen['mean']:.4g} (test split {seen['mean_before']:.4g})",
                )
            )
            continue
        before = dict(batch.outputs.profile["decision"]["categories"])
        after = batch.outputs.share_of("decision")
        compared["outputs"]["decision"]["shares"] = after
        compared["outputs"]["decision"]["shares_before"] = before
        bound = float(bounds["decision_share_change"])
        labels = sorted({*before, *after})
        if len(labels) == 2:  # two labels move together: watch the rarer one (the flagged share)
            labels = [min(labels, key=lambda label: (before.get(label, 0.0), label))]
        for label in labels:
            change = after.get(label, 0.0) - before.get(label, 0.0)
            found.append(
                Check(
                    "prediction drift",
                    f"decision {label}",
                    after.get(label, 0.0),
                    f"test split's {before.get(label, 0.0):.3f} ± {bound:g}",
                    abs(change) > bound,
                    f"{change:+.1%} of the decisions",
                )
            )
    return found, compared


def performance_checks(
    batch: Batch, model: Any, found_policy: Mapping[str, Any], offline: Mapping[str, float]
) -> tuple[list[Check], dict[str, Any] | None]:
    """The policy's bounds on the labelled rows, as the evaluate stage measures a split."""
    if batch.target is None or batch.scored is None:
        return [], None
    from ..stages import evaluate

    bounds = found_policy["monitoring"]["performance"]
    seed = int(found_policy["evaluation"].get("seed", 0))
    measured = evaluate.measure_batch(model, batch.target, batch.scored, seed)
    if isinstance(measured, str):
        return [Check("performance", "labels", None, "-", False, measured)], {
            "undefined": measured
        }
    metrics, ends = measured
    judged = len(batch.target) >= int(bounds["min_rows"])
    by_interval = bounds.get("compare", "point") == "interval"
    found = []
    for rule in [found_policy["primary_metric"], *found_policy["guardrails"]]:
        name, direction, threshold = rule["name"], rule["direction"], float(rule["threshold"])
        value = metrics.get(name)
        if value is None:
            continue
        low, high = ends.get(name, (value, value))
        better = high if direction == "maximize" else low
        judged_value = better if by_interval else value
        misses = not meets(judged_value, direction, threshold)
        sign = ">=" if direction == "maximize" else "<="
        note = (
            f"offline test {number(offline.get(name))}, interval [{number(low)}, {number(high)}]"
        )
        if not judged:
            note += f"; not judged: fewer than {bounds['min_rows']} labelled rows"
        found.append(
            Check("performance", name, value, f"{sign} {threshold:g}", judged and misses, note)
        )
    document = {
        "rows": len(batch.target),
        "metrics": metrics,
        "intervals": {name: list(pair) for name, pair in ends.items()},
        "offline": dict(offline),
        "judged": judged,
    }
    return found, document


def staleness_checks(
    about: Mapping[str, Any], bounds: Mapping[str, Any], day: datetime.date, root: Path
) -> tuple[list[Check], dict[str, Any]]:
    """The days since the model's run was committed (and since its promotion), against a bound."""
    trained = dated(root, "show", "-s", "--format=%cs", about["commit"])
    promoted = None
    if about.get("version"):
        held = [
            found.tag
            for found in registry.assignments(about["name"], root)
            if found.commit == about["commit"]
        ]
        if held:
            promoted = dated(
                root, "for-each-ref", f"refs/tags/{held[-1]}", "--format=%(taggerdate:short)"
            )
    limit = int(bounds["max_age_days"])
    age = (day - trained).days if trained else None
    document = {
        "trained": trained.isoformat() if trained else None,
        "promoted": promoted.isoformat() if promoted else None,
        "age_days": age,
        "max_age_days": limit,
    }
    note = f"run committed {document['trained']}" + (
        f", promoted {document['promoted']}" if promoted else ""
    )
    value = float(age) if age is not None else None
    return [
        Check("staleness", "model age (days)", value, f"<= {limit}", (age or 0) > limit, note)
    ], (document)


def numerical_checks(batch: Batch) -> list[Check]:
    """No score that is not a finite number; scores that collapsed to one value alert."""
    name = inference.OUTPUTS[0]
    found = [
        Check(
            "numerical health",
            f"{name}s not finite",
            float(batch.not_finite),
            "0",
            batch.not_finite > 0,
        )
    ]
    if batch.rows > 1:
        spread = batch.high - batch.low if batch.high >= batch.low else 0.0
        found.append(
            Check(
                "numerical health",
                f"{name} spread",
                spread,
                "> 0",
                spread <= 0,
                f"from {batch.low:.4g} to {batch.high:.4g}" if spread > 0 else "one value",
            )
        )
    return found


def service_checks(
    url: str, batch: Batch, bounds: Mapping[str, Any]
) -> tuple[list[Check], dict[str, Any]]:
    """The service at ``url`` against the pipeline: the same answers, and how fast.

    Sends the batch's first :data:`SAMPLE_ROWS` rows :data:`REQUESTS` times
    to ``/invocations`` (MLflow's scoring protocol); an answer that differs
    from the pipeline's is skew between training and serving. Latency is a
    measurement: the one part of the report that is not the same when made
    again.
    """
    import time
    import urllib.error
    import urllib.request

    if batch.sample is None or batch.expected is None:
        raise MonitorError("the batch has no rows to send to the service")
    split = json.loads(str(batch.sample.to_json(orient="split", index=False)))
    body = json.dumps({"dataframe_split": split}).encode("utf-8")
    request = urllib.request.Request(
        f"{url.rstrip('/')}/invocations", body, {"Content-Type": "application/json"}
    )
    timings, answer = [], {}
    try:
        for _ in range(REQUESTS):
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = json.loads(response.read())
                version = response.headers.get("X-Model-Version")
            timings.append((time.perf_counter() - start) * 1000)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise MonitorError(f"SERVICE={url}: {getattr(error, 'reason', error)}") from None
    column = "prediction" if "prediction" in batch.expected else "decision"
    served = [str(value) for value in answer.get("predictions") or []]
    made = [str(value) for value in batch.expected[column].tolist()]
    agree = sum(one == other for one, other in zip(served, made, strict=False))
    agreement = agree / len(made) if len(served) == len(made) else 0.0
    p99 = float(np.percentile(timings, 99))
    limit = float(bounds.get("max_p99_ms") or math.inf)
    document = {
        "url": url,
        "version": version,
        "rows": len(made),
        "requests": REQUESTS,
        "median_ms": float(np.median(timings)),
        "p99_ms": p99,
        "agreement": agreement,
    }
    found = [
        Check(
            "service",
            "answers as the pipeline",
            agreement,
            "1",
            agreement < 1,
            f"{agree} of {len(made)} rows alike, served by {version}",
        ),
        Check(
            "service",
            f"latency p99 ({len(made)} rows, ms)",
            p99,
            f"<= {limit:g}" if math.isfinite(limit) else "-",
            p99 > limit,
            f"median {document['median_ms']:.1f} ms over {REQUESTS} requests",
        ),
    ]
    return found, document


def rounded(value: Any) -> Any:
    """``value`` with every float rounded to :data:`DIGITS` (NaN and infinities as text)."""
    if isinstance(value, dict):
        return {str(key): rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    if isinstance(value, float | np.floating):
        number_ = float(value)
        return round(number_, DIGITS) if math.isfinite(number_) else str(number_)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def monitor(
    source: Path, ref: str, root: Path = PROJECT_ROOT, service: str | None = None
) -> dict[str, Any]:
    """Check ``source`` with the model ``ref`` names; the report, as ``<batch>.json`` holds it.

    With ``service`` (a URL), the model's service is checked too.
    """
    found_policy = policy.load_project_policy(root)
    bounds = rules(found_policy)
    try:
        loaded = load_model(ref, root)
    except PredictError as error:
        raise MonitorError(str(error)) from None
    about = loaded.about
    batch = read_batch(source, loaded.model, target_at(about["commit"], root))
    day = as_of()
    found = invariant_checks(batch)
    drifted, compared = drift_checks(batch, bounds["drift"])
    performed, performance = performance_checks(
        batch, loaded.model, found_policy, offline_metrics(about["commit"], root)
    )
    aged, staleness = staleness_checks(about, bounds["staleness"], day, root)
    found += drifted + performed + aged + numerical_checks(batch)
    served = None
    if service:
        checked, served = service_checks(service, batch, bounds.get("service") or {})
        found += checked
    return rounded(
        {
            "batch": {
                "path": shown(source.resolve()),
                "sha256": sha256(source),
                "rows": batch.rows,
            },
            "model": about,
            "as_of": day.isoformat(),
            "alerts": [f"{check.area}: {check.subject}" for check in found if check.alert],
            "checks": [asdict(check) for check in found],
            "drift": compared,
            "performance": performance,
            "staleness": staleness,
            "service": served,
        }
    )


def history_line(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the history keeps of a report: enough for a trend, one line per batch and model."""
    decision = report["drift"]["outputs"].get("decision") or {}
    columns = report["drift"]["columns"]
    return {
        "as_of": report["as_of"],
        "batch": report["batch"]["path"],
        "sha256": report["batch"]["sha256"],
        "rows": report["batch"]["rows"],
        "model": report["model"].get("version") or report["model"]["commit"][:12],
        "commit": report["model"]["commit"],
        "alerts": len(report["alerts"]),
        "decisions": decision.get("shares"),
        "max_psi": max((found["psi"] for found in columns.values()), default=0.0),
        "metrics": (report["performance"] or {}).get("metrics"),
    }


def write(report: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write the report's JSON and HTML page, and its line in the history; their paths."""
    from .report.page import render_monitoring

    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(report["batch"]["path"]).stem
    data, page = folder / f"{stem}.json", folder / f"{stem}.html"
    data.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    page.write_text(render_monitoring(report), encoding="utf-8")
    line = history_line(report)
    history = folder / HISTORY_FILE
    kept = []
    if history.is_file():
        for text in history.read_text(encoding="utf-8").splitlines():
            try:
                known = json.loads(text)
            except ValueError:
                continue
            same = (known.get("sha256"), known.get("commit"), known.get("as_of"))
            if same != (line["sha256"], line["commit"], line["as_of"]):
                kept.append(text)
    kept.append(json.dumps(line, sort_keys=True))
    history.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return data, page


def history_section(root: Path = PROJECT_ROOT, shown_lines: int = 12) -> str:
    """The history as the model card shows it: the latest batch, then the trend, newest first."""
    path = root / in_repository(MONITORING_DIR) / HISTORY_FILE
    lines = []
    if path.is_file():
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
    if not lines:
        return "No batch checked yet: `make monitor INPUT=<file>` checks one."
    try:
        found_policy = policy.load_project_policy(root)
        judged = [
            rule["name"] for rule in [found_policy["primary_metric"], *found_policy["guardrails"]]
        ]
    except policy.PolicyError:
        judged = []
    latest = lines[-1]  # in the order the checks ran
    verdict = f"{latest['alerts']} alert(s)" if latest["alerts"] else "no alert"
    head = (
        f"Latest check: `{latest['batch']}` ({latest['rows']} rows) against "
        f"`{latest['model']}` on {latest['as_of']}: {verdict}."
    )
    heads = ["day", "batch", "model", "rows", "alerts", "largest feature PSI", "decisions"]
    heads.append("judged metrics")
    rows = [f"| {' | '.join(heads)} |", f"|{' --- |' * len(heads)}"]
    for line in reversed(lines[-shown_lines:]):
        decisions = ", ".join(
            f"{label}: {share:.1%}" for label, share in (line.get("decisions") or {}).items()
        )
        metrics = ", ".join(
            f"{name} {number(value)}"
            for name, value in (line.get("metrics") or {}).items()
            if name in judged
        )
        rows.append(
            f"| {line['as_of']} | `{line['batch']}` | `{line['model']}` | {line['rows']} | "
            f"{line['alerts']} | {number(line.get('max_psi'))} | {decisions or MISSING} | "
            f"{metrics or MISSING} |"
        )
    return head + "\n\n" + "\n".join(rows)


def summary(report: Mapping[str, Any]) -> str:
    """The checks as the command prints them: the alerts first, then the rest in brief."""
    rows = [["check", "on", "value", "bound", "result", "note"]]
    ordered = sorted(report["checks"], key=lambda check: not check["alert"])
    for check in ordered:
        value = check["value"]
        rows.append(
            [
                check["area"],
                check["subject"],
                "-" if value is None else f"{value:.4g}",
                check["bound"],
                "ALERT" if check["alert"] else "ok",
                check["note"],
            ]
        )
    return table(rows, max_width=160, squeeze=5)


def main(argv: Sequence[str] | None = None) -> int:
    """Check a batch (``make monitor INPUT=... [MODEL=...]``); 1 when an alert fires."""
    parser = argparse.ArgumentParser(
        prog="monitor", description="Check a batch of new rows against the model that scores it."
    )
    parser.add_argument("input", type=Path, help="the batch (CSV or Parquet)")
    parser.add_argument(
        "--model", default=registry.STAGE, help=f"champion, a version, or a {REF_HELP}"
    )
    parser.add_argument(
        "--output", type=Path, default=MONITORING_DIR, help="folder of the reports and history"
    )
    parser.add_argument(
        "--service", metavar="URL", help="check the model's service there too (make serve)"
    )
    arguments = parser.parse_args(argv)
    try:
        report = monitor(arguments.input, arguments.model, service=arguments.service)
    except (MonitorError, policy.PolicyError, registry.RegistryError) as error:
        return failed(error, 2)
    data, page = write(report, arguments.output)
    model = report["model"]
    print(
        f"Checked {report['batch']['rows']} rows of {shown(arguments.input)} against "
        f"{model['version'] or model['commit'][:12]} (run {model['run_id']}), {report['as_of']}:"
    )
    print(summary(report))
    print(f"Report: {shown(data)} and {shown(page)}")
    if report["alerts"]:
        print(f"ALERT: {'; '.join(report['alerts'])}", file=sys.stderr)
        return 1
    print("No alert: the model's checks all hold on this batch.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
