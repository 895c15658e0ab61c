"""One spelling per concept across the subcommands, defaults read from the library, --json and
--dry-run where they belong, and plain progress lines when stderr is not a terminal."""

from __future__ import annotations

import argparse
import inspect
import json

import pytest

from gancompress.cli import build_parser, main

SHARED = {"--asset", "--device", "--quiet", "--json", "--dry-run"}
EXPECTED = {  # which shared options each subcommand takes
    "assets": {"--asset", "--quiet", "--json"},
    "eval": {"--asset", "--device", "--quiet", "--json"},
    "generate": {"--asset", "--device", "--quiet"},
    "prune": {"--asset", "--device", "--json"},
    "distill": {"--asset", "--device", "--quiet", "--dry-run"},
    "train": {"--asset", "--device", "--quiet", "--dry-run"},
    "import": {"--asset"},
    "compress": {"--asset", "--device", "--quiet", "--json", "--dry-run"},
    "export": {"--asset", "--json"},
    "bench": {"--asset", "--quiet", "--json"},
    "sweep": {"--asset", "--device", "--quiet", "--dry-run"},
    "kd": {"--asset", "--device", "--quiet", "--json", "--dry-run"},
    "eval-classifier": {"--asset", "--device", "--json"},
}


def _subparsers():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_subcommand_spells_the_shared_options_alike():
    helps = {}
    for name, sub in _subparsers().items():
        options = {o for a in sub._actions for o in a.option_strings}
        assert options & SHARED == EXPECTED[name], name
        for action in sub._actions:
            for option in set(action.option_strings) & SHARED:
                helps.setdefault(option, set()).add(action.help)
        # outputs are --out (the old spelling is hidden)
        assert "--out-dir" not in {o for a in sub._actions if a.help != argparse.SUPPRESS for o in a.option_strings}
    assert all(len(texts) == 1 for texts in helps.values()), helps  # declared once


def test_defaults_come_from_the_library_and_show_as_typed(capsys):
    from gancompress.evaluation import evaluate

    subs = _subparsers()
    n = next(a for a in subs["eval"]._actions if "--n" in a.option_strings)
    assert n.default == 2000 == inspect.signature(evaluate).parameters["n"].default
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "(default: 1,16)" in out and "(1, 16)" not in out
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    assert "quick: 600 steps of batch 32, n = 500; standard: 20000 steps of batch 64, n = 2000" in \
        " ".join(capsys.readouterr().out.split())


def test_choices_are_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "--adv-loss", "wasserstein", "--dry-run"])
    assert exit_info.value.code == 2 and "invalid choice: 'wasserstein'" in capsys.readouterr().err


def test_json_and_dry_run(work, capsys):
    teacher = str(work / "teacher.safetensors")
    assert main(["prune", "--teacher", teacher, "--width", "0.5", "--out", str(work / "s.safetensors"), "--json"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["channels"] == [16, 8, 8] and pruned["params"][1] < pruned["params"][0]
    assert main(["sweep", "--teacher", teacher, "--widths", "0.5", "--n", "8", "--run-root", str(work / "s"),
                 "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["n_eval"] == 8 and not (work / "s").exists()
    assert main(["compress", "--teacher", teacher, "--steps", "7", "--dry-run", "--run-root", str(work / "r")]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["train"]["steps"] == 7 and plan["compress"] == {"preset": "quick", "n_eval": 500, "data": None}
    assert not (work / "r").exists()


def test_compress_ends_with_the_next_commands(work, capsys):
    teacher = str(work / "teacher.safetensors")
    assert main(["compress", "--teacher", teacher, "--width", "0.5", "--steps", "2", "--batch-size", "4", "--n", "8",
                 "--data", "none", "--run-root", str(work / "runs"), "--quiet"]) == 0
    out = capsys.readouterr().out
    run = next((work / "runs").iterdir())
    assert f"gancompress export --generator {run / 'student.safetensors'} --out {run / 'student.onnx'}" in out
    assert f"gancompress bench --generator {teacher} --generator {run / 'student.safetensors'}" in out


def test_plain_progress_lines_without_a_terminal(work, capsys):
    assert main(["distill", "--teacher", str(work / "teacher.safetensors"), "--steps", "4", "--log-every", "2",
                 "--batch-size", "4", "--lpips", "0", "--run-root", str(work / "runs")]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("distill step")]
    assert [line.split(":")[0] for line in lines] == ["distill step 2/4", "distill step 4/4"] and "\r" not in err
    log = next((work / "runs").glob("*/log.txt")).read_text()
    assert all(line in log for line in lines)  # log.txt records the same lines


def test_import_reads_every_foreign_format_the_teacher_option_reads(work, capsys):
    """`import` and `--teacher FILE` choose the importer in one place (teachers.read_foreign), so a
    DCGAN state_dict imports too."""
    import torch

    from gancompress.io import load_generator
    from tests.conftest import tiny_generator

    original = tiny_generator(channels=(16, 8, 8))
    torch.save(original.state_dict(), work / "netG.pth")
    assert main(["import", str(work / "netG.pth"), "--out", str(work / "imported")]) == 0
    assert "generator (dcgan): DCGAN 32px, channels (16, 8, 8)" in capsys.readouterr().out
    imported = load_generator(work / "imported" / "netG-G.safetensors")
    z = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(imported(z), original(z))
