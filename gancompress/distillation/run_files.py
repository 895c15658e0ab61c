"""What a training run writes into its directory, and reads back on resume: stats.jsonl (one JSON
line per log step), TensorBoard events, progress lines (for log.txt and non-terminal output),
sample grids, and atomic checkpoints (`checkpoints/step-NNNNNNN/` with G, G_ema, D and state.pt;
`checkpoints/latest` names the newest, and it exists only once everything else is written). Only the
main rank writes; with no run directory nothing is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import torch

from gancompress.config import ConfigError
from gancompress.io import WriteError, atomic_path, atomic_write_text, load_generator, save_generator, save_tensors


BEST_FILE = "best.safetensors"


def log_final_metrics(run_dir: Path, metrics: dict, step: int) -> None:
    """The final evaluation's numbers (compress, sweep) as TensorBoard scalars final/<name> at the run's
    last step, beside its training logs in RUN_DIR/tensorboard; None values are left out."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
    try:
        for key, value in metrics.items():
            if value is not None:
                writer.add_scalar(f"final/{key}", float(value), step)
    finally:
        writer.close()


def in_training_evals(run_dir: Path) -> list[dict]:
    """The run's in-training evaluations (`--metrics-every`), in step order: each {"step", **metrics}
    from its stats.jsonl "eval" lines; [] when it has none (or no stats file). A line a crash cut off
    is skipped, as on resume."""
    path = Path(run_dir) / "stats.jsonl"
    evals = []
    for line in path.read_text(errors="replace").splitlines() if path.is_file() else []:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("eval"), dict) and "step" in record:
            evals.append({"step": record["step"], **record["eval"]})
    return sorted(evals, key=lambda e: e["step"])


class RunFiles:
    def __init__(self, run_dir: Path | None, main: bool = True, plain_progress: bool = False,
                 log_line: Callable[[str], None] | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.writes = main and self.run_dir is not None
        self.main = main
        self.plain_progress = plain_progress  # print progress lines to stderr (no terminal for a bar)
        self.log_line = log_line  # also gets every progress line (the run's log.txt)
        self._tb_writer = None
        if self.writes:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    # -- logs
    def log_stats(self, stats: dict, step: int) -> None:
        if not self.writes:
            return
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(stats, sort_keys=True) + "\n")
        if self._tb_writer is not None:
            for key, value in stats.items():
                if key != "step":
                    self._tb_writer.add_scalar(f"train/{key}", value, step)
            self._tb_writer.flush()

    def log_metrics(self, metrics: dict, step: int) -> None:
        """An in-training evaluation: one stats.jsonl line {"step", "eval": {...}} (so loss readers skip
        it) and its numbers as TensorBoard scalars eval/<name>."""
        if not self.writes:
            return
        with open(self.run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps({"step": step, "eval": metrics}, sort_keys=True) + "\n")
        if self._tb_writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb_writer.add_scalar(f"eval/{key}", value, step)
            self._tb_writer.flush()

    def write_best(self, G_ema, about: dict) -> None:
        """The EMA with the best in-training FID so far, as best.safetensors (atomic, like every checkpoint)."""
        save_generator(self.run_dir / BEST_FILE, G_ema, {"best": about})

    def progress_line(self, line: str) -> None:
        if not self.main:
            return
        if self.plain_progress:
            print(line, file=sys.stderr, flush=True)
        if self.log_line is not None:
            self.log_line(line)

    def open_tensorboard(self, step: int) -> None:
        """Called as training starts. On resume, events after the checkpoint's step (logged before the
        process died) are purged, so the steps that are replayed are not logged twice."""
        if not self.writes:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError("tensorboard logging needs the tensorboard package: "
                              "pip install 'gancompress[tensorboard]', or run without --tensorboard") from err
        self._tb_writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=step + 1 if step else None)

    def close(self) -> None:
        if self._tb_writer is not None:
            self._tb_writer.close()
            self._tb_writer = None

    def write_samples(self, rows: list[torch.Tensor], step: int) -> None:
        from gancompress.report import grid_image, save_grid

        save_grid(self.run_dir / "samples" / f"step-{step:07d}.png", rows)
        if self._tb_writer is not None:
            self._tb_writer.add_image("samples", grid_image(rows), step)
            self._tb_writer.flush()

    def truncate_stats(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be written again),
        and any line a crash or a full disk cut off (it does not parse)."""
        path = self.run_dir / "stats.jsonl" if self.run_dir else None
        if not (self.main and path and path.is_file()):
            return
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                line_step = json.loads(line)["step"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if line_step <= step:
                kept.append(line)
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    # -- checkpoints
    def last_checkpoint(self) -> str | None:
        latest = self.run_dir / "checkpoints" / "latest" if self.run_dir else None
        return latest.read_text().strip() if latest is not None and latest.is_file() else None

    def lost_work_note(self) -> str:
        """What is kept when training stops on a bad step."""
        last = self.last_checkpoint()
        return (f"the last good checkpoint, {self.run_dir / 'checkpoints' / last}, is kept" if last
                else "no checkpoint had been written")

    def write_checkpoint(self, step: int, G, G_ema, D, state: dict, keep_every: int = 0) -> None:
        """G, G_ema, D and `state` (optimizers, step, ...) as the checkpoint of `step`; the one before is
        kept, and with `keep_every` every checkpoint whose step is a multiple of it (milestones)."""
        try:
            self._write_checkpoint(step, G, G_ema, D, state, keep_every)
        except WriteError as err:
            last = self.last_checkpoint()
            raise WriteError(f"{err}; the checkpoint of step {step} was not written, " +
                             (f"the previous one ({last}) is intact: free space and resume with --resume {self.run_dir}"
                              if last else "and there is no earlier one")) from err

    def _write_checkpoint(self, step, G, G_ema, D, state, keep_every) -> None:
        root = self.run_dir / "checkpoints"
        target = root / f"step-{step:07d}"
        target.mkdir(parents=True, exist_ok=True)
        save_generator(target / "G.safetensors", G)
        save_generator(target / "G_ema.safetensors", G_ema)
        save_tensors(target / "D.safetensors", D.state_dict(), {"config": D.config.to_dict()})
        with atomic_path(target / "state.pt") as tmp, open(tmp, "wb") as f:
            torch.save(state, f)
        atomic_write_text(root / "latest", target.name + "\n")  # the checkpoint exists only once this is written
        for old in sorted(p for p in root.glob("step-*") if p != target)[:-1]:  # keep the previous one too
            if keep_every and int(old.name.split("-")[1]) % keep_every == 0:
                continue  # a milestone
            for file in old.iterdir():
                file.unlink()
            old.rmdir()

    def read_checkpoint(self, run_dir: Path, device) -> tuple[dict, dict]:
        """({"G", "G_ema", "D"}: state_dicts, state) of the newest checkpoint in `run_dir`."""
        from safetensors.torch import load_file

        root = Path(run_dir) / "checkpoints"
        latest = root / "latest"
        if not latest.is_file():
            raise ConfigError(f"{run_dir}: no checkpoint to resume from (missing {latest})")
        ckpt = root / latest.read_text().strip()
        nets = {"G": load_generator(ckpt / "G.safetensors").state_dict(),
                "G_ema": load_generator(ckpt / "G_ema.safetensors").state_dict(),
                "D": load_file(str(ckpt / "D.safetensors"))}
        state = torch.load(ckpt / "state.pt", map_location=device, weights_only=True)
        if self.main:
            for stale in root.rglob(".*.tmp"):  # temporary files of writes cut off by a crash
                stale.unlink(missing_ok=True)
        return nets, state
