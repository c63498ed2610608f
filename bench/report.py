"""What a figure produces (:class:`FigureResult`, made of :class:`Check` rows) and the
Markdown and JSON reports written from them.

A check is one number compared with one target: ``1.02 <= 1.05``. A figure may have several
(the latency of each backend; throughput and memory). The Markdown table has one row per
check; the JSON keeps everything, including the raw samples and what each side ran.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Op = Literal["<=", ">="]


@dataclass
class Check:
    """One measured number against its target."""

    name: str  # what is measured, e.g. "time ratio vs bare docker run"
    value: float
    unit: str  # "x" for ratios, "ms", "MB"
    op: Op
    target: float
    detail: str = ""  # the numbers behind it, one short line

    @property
    def met(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value <= self.target if self.op == "<=" else self.value >= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class FigureResult:
    """Everything one figure measured."""

    number: int
    title: str
    checks: list[Check] = field(default_factory=list)
    sides: dict[str, str] = field(default_factory=dict)  # variant -> what it runs, exactly
    metrics: dict[str, Any] = field(default_factory=dict)  # summaries, sizes, counts
    samples: dict[str, list[float]] = field(default_factory=dict)  # raw seconds (or ms) by variant
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # set when the figure could not be measured
    seconds: float = 0.0  # how long the figure took to measure

    @property
    def met(self) -> bool:
        return self.error is None and bool(self.checks) and all(check.met for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [check.as_dict() for check in self.checks]
        data["met"] = self.met
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FigureResult:
        checks = [Check(**{k: v for k, v in c.items() if k != "met"}) for c in data.get("checks", [])]
        fields = {k: v for k, v in data.items() if k not in ("checks", "met")}
        return cls(checks=checks, **fields)


def _number(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit == "x":
        return f"{value:.3f}"
    if unit == "modules":
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.1f} {unit}"


def markdown(run: dict[str, Any], figures: list[FigureResult]) -> str:
    """The results table with the machine it came from and what each side ran."""
    machine = run["machine"]
    lines = [
        "# Dockyter benchmark results",
        "",
        (
            f"Run {run['started']} ({'quick mode: small sizes, few rounds; not for publishing' if run['quick'] else 'full mode'}), "
            f"{run['seconds']:.0f} s. Every ratio compares Dockyter with the bare runtime measured in the same run, "
            "in alternating rounds; a value is the median over rounds."
        ),
        "",
        "| # | figure | measured | value | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for figure in figures:
        if figure.error is not None:
            lines.append(f"| {figure.number} | {figure.title} | **not measured**: {_cell(figure.error)} | n/a | | no |")
            continue
        for check in figure.checks:
            target = f"{check.op} {_number(check.target, check.unit)}"
            mark = "yes" if check.met else "**no**"
            lines.append(
                f"| {figure.number} | {figure.title} | {_cell(check.name)} | {_number(check.value, check.unit)} | {target} | {mark} |"
            )
    lines += ["", "## Details", ""]
    for figure in figures:
        lines.append(f"### {figure.number}. {figure.title}")
        lines.append("")
        if figure.error is not None:
            lines += [f"Not measured: `{figure.error}`", ""]
        for check in figure.checks:
            if check.detail:
                lines.append(f"- {check.name}: {check.detail}")
        for name, what in figure.sides.items():
            lines.append(f"- **{name}** runs: `{what}`")
        for note in figure.notes:
            lines.append(f"- {note}")
        lines.append(f"- measured in {figure.seconds:.0f} s")
        lines.append("")
    lines += ["## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    leftovers = run.get("leftover_containers") or []
    lines += [
        "",
        f"Containers left behind by Dockyter after the run: {', '.join(leftovers) if leftovers else 'none'}.",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def write(directory: Path, run: dict[str, Any], figures: list[FigureResult], stem: str = "latest") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    md_path = directory / f"{stem}.md"
    document = {**run, "all_met": all(f.met for f in figures), "figures": [f.as_dict() for f in figures]}
    json_path.write_text(
        json.dumps(_finite(document), indent=2, allow_nan=False, default=_jsonable) + "\n", encoding="utf-8"
    )
    md_path.write_text(markdown(run, figures), encoding="utf-8")
    return md_path, json_path


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON has no spelling for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {value!r}")
