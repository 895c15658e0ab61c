"""One resumable harness for studies: a plan, named rows, then tables.

A study directory holds
  <plan file>         the plan as JSON; a study resumed in the same directory must have the same plan
  <rows dir>/<name>.json   one finished row each: a finished row is never redone
  runs/ (by convention)    whatever a row trains, resumable on its own
so a study can be interrupted and resumed, or its rows split over processes or machines that
share the directory (`select` picks a subset), and the tables are written once every row is there.
`gancompress sweep` and the studies in eval/ are built on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from gancompress.errors import GancompressError
from gancompress.io import atomic_write_text


class StudyError(GancompressError, ValueError):
    """A study's plan is invalid, does not match the directory it resumes, or names no planned row."""


class Study:
    """The directory `out_dir` of a study with `plan` (any JSON-able dict).

    `open()` writes the plan to a new directory or checks it against the stored one; `row(name,
    compute)` returns the stored row or computes, stores (atomically) and returns it."""

    def __init__(self, out_dir: str | Path, plan: dict, plan_file: str = "plan.json", rows_dir: str = "rows",
                 what: str = "study"):
        self.out_dir = Path(out_dir)
        self.plan = plan
        self.plan_file = self.out_dir / plan_file
        self.rows_dir = self.out_dir / rows_dir
        self.what = what  # how errors and log lines name it ("sweep", "study")

    def open(self) -> Study:
        if self.plan_file.is_file():
            stored = json.loads(self.plan_file.read_text())
            if stored != self.plan:
                changed = sorted(k for k in {*stored, *self.plan} if stored.get(k) != self.plan.get(k))
                raise StudyError(f"{self.out_dir} holds a different {self.what} ({self.plan_file.name}: {stored}; "
                                 f"differs in {', '.join(changed)}); resume it with the same options or start a new one")
        else:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.plan_file, json.dumps(self.plan, indent=2) + "\n")
        return self

    def row_file(self, name: str) -> Path:
        return self.rows_dir / f"{name}.json"

    def done(self, name: str) -> bool:
        return self.row_file(name).is_file()

    def row(self, name: str, compute: Callable[[], dict], log: Callable[[str], None] | None = None) -> dict:
        """The row `name`: read back when a run before finished it, else `compute()`d and stored."""
        path = self.row_file(name)
        if path.is_file():
            if log:
                log(f"{name}: done before, skipped")
            return json.loads(path.read_text())
        row = compute()
        atomic_write_text(path, json.dumps(row, indent=2) + "\n")
        return row

    def rows(self, names: Iterable[str]) -> list[dict]:
        """Every named row, in order; a missing one is an error that names what to run."""
        names = list(names)
        missing = [name for name in names if not self.done(name)]
        if missing:
            raise StudyError(f"{self.out_dir}: rows {', '.join(missing)} are not done; run the {self.what} without "
                             "a row selection to finish them")
        return [json.loads(self.row_file(name).read_text()) for name in names]


def select(planned: Iterable[str], only: str | Iterable[str] | None, option: str = "--only") -> list[str]:
    """The planned row names that `only` (comma-separated names, or a list; empty: all) picks, in
    plan order. A name the plan lacks is an error naming the planned ones."""
    planned = list(planned)
    wanted = [item for item in (only.split(",") if isinstance(only, str) else only or []) if item]
    unknown = sorted(set(wanted) - set(planned))
    if unknown:
        raise StudyError(f"{option} names no planned row: {', '.join(unknown)}; planned: {', '.join(planned)}")
    return [name for name in planned if not wanted or name in wanted]
