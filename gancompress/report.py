"""Grids, tables and reports: the one number formatter, markdown tables, sample grids on shared
inputs, and the compress report (the sweep's plots and pages are in sweeps.py, built from these)."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from gancompress.io import atomic_path


def grid_image(rows: list[torch.Tensor]) -> torch.Tensor:
    """One row per tensor of images in [-1, 1] (same count each; 1-channel shown as grey) -> (3, H, W) in [0, 1]."""
    images = torch.cat([r.detach().float().cpu() for r in rows])
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return make_grid(images, nrow=len(rows[0]), padding=2, normalize=True, value_range=(-1, 1), pad_value=1.0)


def save_grid(path: str | Path, rows: list[torch.Tensor], labels: list[str] | None = None) -> Path:
    """`grid_image(rows)` as a PNG, written atomically; `labels` name the rows in a left margin."""
    path = Path(path)
    image = grid_image(rows)
    with atomic_path(path) as tmp:
        if labels:
            _labelled(image, labels).save(tmp, format="png")
        else:
            save_image(image, tmp, format="png")
    return path


def _labelled(image: torch.Tensor, labels: list[str]):
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.transforms.functional import to_pil_image

    grid = to_pil_image(image)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(grid)
    margin = int(max(probe.textlength(label, font=font) for label in labels)) + 8
    canvas = Image.new("RGB", (grid.width + margin, grid.height), "white")
    canvas.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row_height = (grid.height - 2) / len(labels)  # make_grid: 2 px padding above every row and below the last
    for i, label in enumerate(labels):
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        draw.text((4, 2 + (i + 0.5) * row_height - (bottom + top) / 2), label, fill="black", font=font)
    return canvas


def sample_grid(path: str | Path, generators: list, n: int = 8, seed: int = 0, device="cpu",
                labels: list[str] | None = None) -> Path:
    """One row per generator on the same `n` latents (`seed`) and the same extra inputs (StyleGAN2's
    noise, drawn from `seed` for the first generator), so the rows differ by the network only;
    `labels` name the rows."""
    from gancompress.evaluation import latents
    from gancompress.families import family_of

    first = generators[0]
    z = latents(n, first.z_dim, seed=seed).to(device)
    extra = family_of(first).shared_inputs(first, n, torch.Generator().manual_seed(seed), device)
    with torch.inference_mode():
        images = [g.eval()(z, **extra) for g in generators]
    return save_grid(path, images, labels)


def format_number(value, digits: int = 4) -> str:
    """How every table shows a number: integers with thousands separators, floats to `digits`
    significant digits below 1000 and as rounded integers from 1000 up, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def markdown_table(head: list[str], body: list[list[str]]) -> list[str]:
    """The lines of a markdown table (cells already formatted)."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in body]


def _ratio(student: float, teacher: float) -> float | None:
    return student / teacher if teacher else None


def comparison(teacher_record: dict, student_record: dict, data_records: tuple[dict, dict] | None = None) -> dict:
    """Teacher vs student from two evaluation records made with the same protocol (against teacher
    samples), plus FID/KID against real data from a second pair of records when given."""
    t, s = teacher_record, student_record
    rows = {
        "fid_vs_teacher_samples": (t["metrics"]["fid"], s["metrics"]["fid"]),
        "kid_vs_teacher_samples": (t["metrics"]["kid"]["mean"], s["metrics"]["kid"]["mean"]),
    }
    if data_records:
        td, sd = data_records
        rows["fid_vs_data"] = (td["metrics"]["fid"], sd["metrics"]["fid"])
        if "mean" in sd["metrics"]["kid"]:  # not against precomputed statistics (FID only)
            rows["kid_vs_data"] = (td["metrics"]["kid"]["mean"], sd["metrics"]["kid"]["mean"])
    rows |= {
        "lpips_to_teacher": (t["metrics"]["lpips"].get("mean"), s["metrics"]["lpips"].get("mean")),
        "params": (t["cost"]["params"], s["cost"]["params"]),
        "macs_per_image": (t["cost"]["macs_per_image"], s["cost"]["macs_per_image"]),
    }
    for rule in ("input_resolution", "output_resolution"):  # the papers' rules (metrics/cost.py)
        if rule in t["cost"].get("macs_by_rule", {}) and rule in s["cost"].get("macs_by_rule", {}):
            rows[f"macs_{rule}"] = (t["cost"]["macs_by_rule"][rule], s["cost"]["macs_by_rule"][rule])
    for lt, ls in zip(t["cost"].get("latency", []), s["cost"].get("latency", [])):
        rows[f"latency_ms_b{lt['batch_size']}"] = (lt["median_ms_per_image"], ls["median_ms_per_image"])
    out = {k: {"teacher": a, "student": b, "student_over_teacher": _ratio(b, a) if a and b is not None else None}
           for k, (a, b) in rows.items()}
    return out


def write_report(run_dir: Path, summary: dict) -> tuple[Path, Path]:
    """report.json (everything) and report.md (the table a person reads) in `run_dir`."""
    import json

    from gancompress.io import atomic_write_text

    run_dir = Path(run_dir)
    json_path, md_path = run_dir / "report.json", run_dir / "report.md"
    atomic_write_text(json_path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    cmp = summary["comparison"]
    p = summary["student_eval"]["protocol"]
    names = {
        "fid_vs_teacher_samples": "FID vs teacher samples", "kid_vs_teacher_samples": "KID vs teacher samples",
        "fid_vs_data": "FID vs data", "kid_vs_data": "KID vs data",
        "lpips_to_teacher": "LPIPS to teacher (AlexNet)", "params": "parameters", "macs_per_image": "MACs / image",
        "macs_input_resolution": "MACs / image, papers' input-resolution rule",
        "macs_output_resolution": "MACs / image, output-resolution rule",
        "latency_ms_b1": "latency, batch 1 (ms/img)", "latency_ms_b16": "latency, batch 16 (ms/img)",
    }

    lines = [
        f"# Compression report: {summary['teacher']} -> student {tuple(summary['student_channels'])}",
        "",
        f"Command: `{summary['command']}`" + (f" (resumed with `{summary['resumed_with']}`)"
                                               if summary.get("resumed_with") else ""),
        "",
        "| metric | teacher | student | student / teacher |",
        "|---|---|---|---|",
    ]
    for key, row in cmp.items():
        lines.append(f"| {names.get(key, key)} | {format_number(row['teacher'])} | {format_number(row['student'])} | "
                     f"{format_number(row['student_over_teacher'])} |")
    lines += [
        "",
        "The teacher's FID vs teacher samples is the sampling-noise floor: the teacher against fresh samples of "
        "itself at the same n.",
        "",
        "Protocol: " + "; ".join([
            f"n = {p['n_generated']} generated vs {p['n_reference']} reference ({p['reference']})",
            f"features: {p['feature_extractor']}, weights {p['feature_weights']['asset']} "
            f"sha256 {p['feature_weights']['sha256'][:16]}, computed by {p.get('feature_backend', 'torch')}",
            f"resize: {p['resize']}", f"latents: {p['latents']}",
            f"device {p['device']}, {p['threads']} threads, torch {p['torch']}",
        ]) + ".",
    ]
    if "macs_input_resolution" in cmp:
        lines += ["", "MACs / image: torch's FlopCounterMode / 2 (transposed convolutions at their input resolution, "
                      "FIR filters included); the input-resolution rule leaves the fixed FIR filters out (CAGAN, StyleKD, "
                      "DCP); the output-resolution rule counts transposed convolutions at their output size (Anycost GAN, "
                      "MobileStyleGAN). docs/cost.md"]
    latency = summary["student_eval"]["cost"].get("latency") or []
    if latency:
        lines += ["", f"Latency: median ms per image, {latency[0]['graph']} on {latency[0]['device']} with "
                      f"{latency[0]['threads']} threads, warm-up excluded (runs and IQR in report.json)."]
    if summary.get("data_evals"):
        d = summary["data_evals"]["student"]["protocol"]
        lines += ["", f"FID/KID vs data: {d['n_generated']} generated images vs {d['reference']}; "
                      "same features, resize and latents."]
    if summary.get("note"):
        lines += ["", summary["note"]]
    lines += ["", f"Training: {summary['training']['steps']} steps of batch {summary['training']['batch_size']} "
                  f"in {summary['training']['time_s']:.0f} s. Grid: `{summary['grid']}` (teacher row, student row, same latents)."]
    atomic_write_text(md_path, "\n".join(lines) + "\n")
    return json_path, md_path
