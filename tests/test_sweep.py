"""gancompress sweep on a tiny teacher: every pair trained and measured once, resumable, with a
table, plots (data beside them), a grid and a report page that headless Chromium renders."""

import csv
import json
import shutil
import statistics
import subprocess

import pytest
import torch
from PIL import Image

from gancompress.cli import main
from gancompress.io import load_generator, save_generator, sha256_file
from gancompress.pipeline import RunError
from gancompress.report import format_number
from gancompress.sweeps import (SweepError, _steps_plot, measure_pair, pareto_front, parse_plan, plan_command,
                                prepare_sweep_dir, run_sweep, spans_a_decade, train_pair)
from tests.conftest import tiny_generator

TINY = {"steps": 3, "batch_size": 4}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, ready_assets):
    root = tmp_path_factory.mktemp("sweep")
    teacher = save_generator(root / "teacher.safetensors", tiny_generator(channels=(32, 16, 16)))
    plan = parse_plan(str(teacher), ["0.5", "0.25"], ["distill", "scratch"], "quick", TINY, 16, None)
    out = run_sweep(plan, root / "sweep", progress=False, log=lambda m: None)
    return plan, out


def test_every_pair_has_one_row_with_every_column(finished_sweep):
    plan, out = finished_sweep
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert [r["model"] for r in rows] == ["teacher", "distill-w0.5", "scratch-w0.5", "distill-w0.25", "scratch-w0.25"]
    for r in rows:
        for key in ("params", "macs", "fid_vs_teacher", "lpips_to_teacher", "latency_torch_b1_ms",
                    "latency_torch_b16_ms", "latency_ort_b1_ms", "latency_ort_b16_ms"):
            assert float(r[key]) >= 0, (r["model"], key)
        assert abs(float(r["kid_vs_teacher"])) < 1  # KID's unbiased estimate can fall just below 0
        assert r["n"] == "16"
    macs = {r["model"]: float(r["macs"]) for r in rows}
    assert macs["teacher"] > macs["distill-w0.5"] > macs["distill-w0.25"] and macs["distill-w0.5"] == macs["scratch-w0.5"]
    assert {r["steps"] for r in rows[1:]} == {"3"}


def test_plots_grid_and_report_are_written_with_their_data(finished_sweep):
    _, out = finished_sweep
    assert not (out / "fid_vs_steps.png").exists()  # no run was evaluated during training
    for name in ("fid_vs_macs", "fid_vs_latency"):
        assert Image.open(out / f"{name}.png").size[0] > 300
        data = list(csv.DictReader(open(out / f"{name}.csv")))
        assert len(data) == 5 and any(d["pareto"] == "1" for d in data)
    assert Image.open(out / "grid.png").size[1] > 5 * 16  # five rows of 16 px images
    report = (out / "report.md").read_text()
    assert "| distill-w0.25 |" in report and "speedup ORT b1 (/ MACs reduction)" in report and "threads" in report
    rows = {r["model"]: r for r in json.loads((out / "table.json").read_text())["rows"]}
    teacher, student = rows["teacher"], rows["distill-w0.25"]
    speedup = teacher["latency_ort_b1_ms"] / student["latency_ort_b1_ms"]
    ratio = speedup / (teacher["macs"] / student["macs"])
    line = next(line for line in report.splitlines() if line.startswith("| distill-w0.25 |"))
    assert f"{speedup:.2f}x ({ratio:.2f})" in line and "1.00x (1.00)" in report
    file_sha256 = sha256_file(out / student["run_dir"] / "student.safetensors")  # each student file, by its bytes
    assert student["sha256"] == file_sha256 and f"| distill-w0.25 | {student['run_dir']}/student.safetensors | " \
        f"`{file_sha256}` |" in report
    plan, _ = finished_sweep
    assert f"Command: gancompress sweep --teacher {plan['teacher']} --widths 0.5,0.25 --methods distill,scratch " \
           "--preset quick --steps 3 --batch-size 4 --n 16 --data none." in report


def test_a_resumed_sweep_redoes_only_what_is_missing(finished_sweep):
    plan, out = finished_sweep
    kept = (out / "pairs" / "distill-w0.5.json").read_text()
    (out / "pairs" / "scratch-w0.25.json").unlink()
    run_sweep(plan, out, progress=False, log=lambda m: None)
    assert (out / "pairs" / "distill-w0.5.json").read_text() == kept  # not re-measured
    assert json.loads((out / "pairs" / "scratch-w0.25.json").read_text())["steps"] == 3
    other = dict(plan, widths=[0.125])
    with pytest.raises(SweepError, match="different sweep"):
        run_sweep(other, out, progress=False, log=lambda m: None)


def test_pairs_trained_apart_are_evaluated_not_retrained(finished_sweep, tmp_path):
    """eval/sweep_train_pairs.py's path: train a pair on its own, then `sweep --resume` only measures it."""
    plan, done = finished_sweep
    teacher = plan["teacher"]
    plan = parse_plan(teacher, ["0.5"], ["distill"], "quick", TINY, 16, None)
    out = prepare_sweep_dir(plan, tmp_path / "split")
    run_dir, trainer = train_pair(plan, out, 0.5, "distill", progress=False, log=lambda m: None)
    assert trainer.step == 3
    stats, log = (run_dir / "stats.jsonl").read_text(), (run_dir / "log.txt").read_text()
    finished = json.loads((run_dir / "finished.json").read_text())
    assert finished["step"] == 3 and finished["student_sha256"] == sha256_file(run_dir / "student.safetensors")
    # a finished run kept as its small final files (as the committed sweeps keep them) is still finished
    shutil.rmtree(run_dir / "checkpoints")
    measure_pair(plan, out, 0.5, "distill", progress=False, log=lambda m: None)  # sweep_train_pairs.py --measure
    assert list((out / "runs").iterdir()) == [run_dir]  # found, not started again
    measured = (out / "pairs" / "distill-w0.5.json").read_text()
    run_sweep(plan, out, progress=False, log=lambda m: None)
    assert (out / "pairs" / "distill-w0.5.json").read_text() == measured  # the sweep keeps the pair's row
    assert (run_dir / "log.txt").read_text() == log and (run_dir / "stats.jsonl").read_text() == stats
    row = json.loads((out / "pairs" / "distill-w0.5.json").read_text())
    assert row["steps"] == 3 and row["run_dir"] == f"runs/{run_dir.name}"
    assert row["train_time_s"] == pytest.approx(finished["elapsed_s"])
    # a student file changed after training is refused, not measured as the run's student
    (out / "pairs" / "distill-w0.5.json").unlink()
    save_generator(run_dir / "student.safetensors", tiny_generator(channels=(32, 16, 16)))
    with pytest.raises(RunError, match="not the student this run wrote"):
        run_sweep(plan, out, progress=False, log=lambda m: None)
    # same plan, same seeds: the same student as the pair trained inside the straight-through sweep
    straight = json.loads((done / "pairs" / "distill-w0.5.json").read_text())
    assert row["lpips_to_teacher"] == pytest.approx(straight["lpips_to_teacher"], rel=1e-4)


def test_a_run_trained_outside_the_sweep_is_adopted_only_when_it_trained_the_pair(finished_sweep, tmp_path):
    """eval/sweep_train_pairs.py --adopt: a recipe search's run of exactly the pair's training (other
    log, sample and checkpoint intervals) becomes the pair's run, measured and not retrained; the
    intervals do not change a weight. A run of other settings, or unfinished, is refused by name."""
    import dataclasses

    from gancompress.pipeline import StudentPlan, run_training, start_run
    from gancompress.sweeps import _train_config, adopt_run

    plan, done = finished_sweep
    plan = parse_plan(plan["teacher"], ["0.5"], ["distill"], "quick", TINY, 16, None)
    pair_config = _train_config(plan, "distill", "dcgan")
    searched = dataclasses.replace(pair_config, log_every=1, sample_every=1, checkpoint_every=2)
    student_plan = StudentPlan("inherit", width=0.5, criterion="bn", prune_seed=0)
    search_run = start_run(tmp_path / "search", "feat=0-s0", searched, plan["teacher"], student_plan)
    other_seed = start_run(tmp_path / "search", "seed1", dataclasses.replace(searched, seed=1), plan["teacher"], student_plan)
    out = prepare_sweep_dir(plan, tmp_path / "adopting")
    quiet = lambda m: None  # noqa: E731
    with pytest.raises(SweepError, match="not a finished run"):
        adopt_run(plan, out, 0.5, "distill", search_run, quiet)
    run_training(search_run, progress=False)
    run_training(other_seed, progress=False)
    with pytest.raises(SweepError, match=r"did not train pair distill-w0.5: train.seed 1 \(the pair: 0\)"):
        adopt_run(plan, out, 0.5, "distill", other_seed, quiet)
    adopted = adopt_run(plan, out, 0.5, "distill", search_run, quiet)
    assert adopted.name == "00000-distill-w0.5" and (adopted / "finished.json").is_file()
    measure_pair(plan, out, 0.5, "distill", progress=False, log=quiet)
    assert list((out / "runs").iterdir()) == [adopted]  # measured, not trained again
    assert json.loads((out / "pairs" / "distill-w0.5.json").read_text())["steps"] == 3
    straight = load_generator(done / "runs" / "00000-distill-w0.5" / "student.safetensors")
    for a, b in zip(straight.state_dict().values(), load_generator(adopted / "student.safetensors").state_dict().values()):
        assert torch.equal(a, b)  # the sweep's own intervals trained the same weights
    with pytest.raises(SweepError, match="has a run in"):
        adopt_run(plan, out, 0.5, "distill", search_run, quiet)


def test_a_sweep_with_another_seed_trains_other_students_and_says_so(finished_sweep, tmp_path):
    """--seed: the same plan trained again with another seed, for the seed-to-seed spread."""
    plan, done = finished_sweep
    seeded = parse_plan(plan["teacher"], ["0.5"], ["distill"], "quick", {**TINY, "seed": 1}, 16, None)
    out = prepare_sweep_dir(seeded, tmp_path / "seed1")
    run_dir, trainer = train_pair(seeded, out, 0.5, "distill", progress=False, log=lambda m: None)
    assert trainer.config.seed == 1 and json.loads((run_dir / "run.json").read_text())["train"]["seed"] == 1
    seed0 = load_generator(done / "runs" / "00000-distill-w0.5" / "student.safetensors")
    seed1 = load_generator(run_dir / "student.safetensors")
    assert not torch.equal(next(seed0.parameters()), next(seed1.parameters()))
    assert "--seed 1" in plan_command(seeded)
    assert main(["sweep", "--teacher", plan["teacher"], "--widths", "0.5", "--methods", "distill", "--steps", "3",
                 "--seed", "2", "--dry-run"]) == 0


def test_report_marks_the_front_recommends_within_a_budget_and_labels_the_grid(finished_sweep, tmp_path):
    from gancompress.sweeps import write_outputs

    plan, done = finished_sweep
    out = shutil.copytree(done, tmp_path / "copy")
    rows = {r["model"]: r for r in json.loads((out / "table.json").read_text())["rows"]}
    students = [r for r in rows.values() if r["method"]]
    # latency: every model timed in turn over 3 rounds; the table holds the medians, the report the range
    rounds = json.loads((out / "latency_rounds.json").read_text())
    assert rounds["rounds"] == 3 and list(rounds["latency"]) == list(rows)
    for model, r in rows.items():
        assert len(r["latency_ort_b1_ms_rounds"]) == 3 == len(rounds["latency"][model]["latency_torch_b16_ms"])
        assert r["latency_ort_b1_ms"] == statistics.median(r["latency_ort_b1_ms_rounds"])
    teacher_line = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| teacher |"))
    low, high = min(rows["teacher"]["latency_ort_b1_ms_rounds"]), max(rows["teacher"]["latency_ort_b1_ms_rounds"])
    assert f"({format_number(low)}-{format_number(high)})" in teacher_line
    # a budget only the narrower students fit: the best FID among them, not the best overall
    budget = max(r["macs"] for r in students if r["width"] == 0.25)
    expected = min((r for r in students if r["macs"] <= budget), key=lambda r: r["fid_vs_teacher"])["model"]
    result = write_outputs(out, plan, budget_macs=budget)
    assert result["recommended"] == expected and expected.endswith("w0.25")
    report = (out / "report.md").read_text()
    assert f"Recommended within the budget (MACs <= {budget:.4g}): **{expected}**" in report
    assert f"| **{expected}** |" in report and f"[{expected}](runs/" in report
    page = (out / "report.html").read_text()
    assert "class='recommended" in page and f"<a href='{rows[expected]['run_dir']}/'>{expected}</a>" in page
    front_lines = [line for line in report.splitlines() if line.startswith("| ") and line.endswith(" |")
                   and line.split(" | ")[-2] == "yes"]
    assert 1 <= len(front_lines) <= len(students)
    speedups = list(csv.DictReader(open(out / "speedup_vs_macs.csv")))
    assert [d["model"] for d in speedups] == [r["model"] for r in students]
    assert all(float(d["macs_reduction"]) > 1 and float(d["speedup_ort_b1"]) > 0 for d in speedups)
    assert Image.open(out / "speedup_vs_macs.png").size[0] > 300
    width, height = Image.open(out / "grid.png").size
    side = (height - 2) // len(rows) - 2  # make_grid: one row per model, 2 px padding
    assert width >= 8 * (side + 2) + 2 + 60  # 8 samples per row plus a margin wide enough for "scratch-w0.25"
    assert write_outputs(out, plan, budget_ms=1e-9)["recommended"] is None
    assert "No student fits the budget (ONNX Runtime batch 1 <= 1e-09 ms)." in (out / "report.md").read_text()


def test_tuning_our_default_recipe_never_changes_a_baseline():
    """The baselines name every setting the default-recipe search tunes, so committed baseline rows stay
    valid when TrainConfig's defaults move; only `distill` follows the defaults."""
    from gancompress.sweeps import METHODS
    from tests.test_tune_recipe import tune_recipe  # eval/tune_recipe.py, loaded once by its own tests

    tuned = {field for setting in tune_recipe.STAGE_ONE for field in tune_recipe.parse_setting(setting)}
    assert {"feat", "adv", "lpips", "lr_g", "lr_d", "r1_gamma", "diffaug", "ema_decay", "d_width"} <= tuned
    for name, recipe in METHODS.items():
        for family in recipe.families:
            overrides = recipe.overrides(family)
            if name == "distill":
                assert overrides == {}
            elif overrides is not None:
                assert tuned | {"d_init", "betas"} <= set(overrides), name


def test_fid_axis_turns_log_only_when_the_values_span_a_decade():
    assert spans_a_decade([12.94, 13.10, 16.65, 360.73])  # the StyleGAN2 sweep: leaders apart from failed baselines
    assert not spans_a_decade([12.94, 13.10, 16.65, 47.74])
    assert not spans_a_decade([0.0, 5.0, 40.0])  # a zero (LPIPS of the teacher) cannot sit on a log axis: left out
    assert spans_a_decade([0.0, 0.005, 0.36])


def test_fid_against_steps_plots_each_runs_in_training_evaluations(tmp_path):
    def run(name: str, evals: list[tuple[int, float]], torn_tail: bool = False) -> str:
        run_dir = tmp_path / "runs" / name
        run_dir.mkdir(parents=True)
        lines = []
        for step, fid in evals:
            lines.append(json.dumps({"step": step, "g_loss": 1.0}))  # a loss line: not a point
            lines.append(json.dumps({"step": step, "eval": {"fid": fid, "fid_floor": 23.6, "n": 1000, "lpips": 0.1}}))
        text = "\n".join(lines) + "\n" + ('{"step": 9000, "eval": {"fid"' if torn_tail else "")
        (run_dir / "stats.jsonl").write_text(text)
        return f"runs/{name}"

    rows = [{"model": "teacher", "method": None, "width": 1.0},
            {"model": "distill-w0.25", "method": "distill", "width": 0.25,
             "run_dir": run("00000-distill-w0.25", [(2000, 56.6), (1000, 64.8)], True)},
            {"model": "cagan-w0.25", "method": "cagan", "width": 0.25,
             "run_dir": run("00001-cagan-w0.25", [(1000, 73.3), (2000, 70.1)])},
            {"model": "scratch-w0.25", "method": "scratch", "width": 0.25,
             "run_dir": run("00002-scratch-w0.25", [(1000, 300.0)])}]  # one point: no curve
    path = _steps_plot(rows, tmp_path, tmp_path / "fid_vs_steps.png")
    assert Image.open(path).size[0] > 300
    data = list(csv.DictReader(open(tmp_path / "fid_vs_steps.csv")))
    assert [(d["model"], int(d["step"]), float(d["fid_vs_teacher"])) for d in data] == [
        ("distill-w0.25", 1000, 64.8), ("distill-w0.25", 2000, 56.6), ("cagan-w0.25", 1000, 73.3),
        ("cagan-w0.25", 2000, 70.1)]  # step order; the torn last line and the one-point run left out
    assert {(d["n"], d["fid_floor"]) for d in data} == {("1000", "23.6")}
    assert _steps_plot(rows[:1] + rows[3:], tmp_path, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_pareto_front():
    points = [(10, 50), (5, 60), (5, 70), (20, 40), (20, 45)]  # (cost, FID)
    assert pareto_front(points) == [0, 1, 3]


def test_bad_sweep_options_are_one_line_errors(capsys):
    assert main(["sweep", "--widths", "0.5,2", "--methods", "distill"]) == 2
    assert "widths must be in (0, 1]" in capsys.readouterr().err
    assert main(["sweep", "--widths", "0.5", "--methods", "distill,magic"]) == 2
    assert "unknown methods ['magic']" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium (./setup.sh installs it as root)")
def test_headless_chromium_renders_the_report_with_plot_and_table(finished_sweep, tmp_path):
    _, out = finished_sweep
    page = f"file://{out / 'report.html'}"
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(flags + ["--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert "<table id=\"results\">" in dom and dom.count("data:image/png;base64,") == 4 and "distill-w0.25" in dom
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,2400", page], capture_output=True, timeout=120)
    image = Image.open(shot).convert("RGB")
    pixels = list(image.get_flattened_data())
    plot_blue = sum(1 for r, g, b in pixels if b > 150 and r < 90 and 90 < g < 150)  # matplotlib's first line colour
    assert plot_blue > 200, "the FID-vs-MACs plot did not render"


def test_published_recipes_set_their_papers_terms_and_refuse_a_teacher_they_do_not_fit(tmp_path):
    from gancompress.families.stylegan2.config import StyleGAN2Config
    from gancompress.io import load_generator
    from gancompress.pruning import prune_generator
    from gancompress.sweeps import METHODS, _student_plan, _train_config
    from tests.conftest import tiny_stylegan2

    stylegan2 = save_generator(tmp_path / "sg2.safetensors", tiny_stylegan2())
    plan = parse_plan(str(stylegan2), ["0.5"], list(METHODS), "quick", TINY, 16, None)  # every method checks
    cagan = _train_config(plan, "cagan", "stylegan2")
    assert (cagan.l1, cagan.lpips, cagan.feat, cagan.adv, cagan.r1_gamma, cagan.r1_interval) == (3, 3, 0, 1, 10, 16)
    assert (cagan.style_mixing, cagan.pl_weight, cagan.lr_g, cagan.betas, cagan.diffaug) == (0.9, 2, 0.002, (0, 0.99), ())
    assert cagan.steps == 3  # the sweep's own overrides win
    assert _student_plan(METHODS["cagan"].student, 0.5).criterion == "cagan"  # CAGAN's gradient score
    assert plan["teacher_discriminator"] is None and cagan.d_init == "teacher-size"  # no D beside it: a fresh full one
    distill = _student_plan(METHODS["distill"].student, 0.5)
    assert distill.criterion is None and distill.resolved(tiny_stylegan2()).criterion == "cagan"  # the family's default
    stylekd = _train_config(plan, "stylekd", "stylegan2")
    assert stylekd.relation == 30 and stylekd.l1 == stylekd.lpips == 3 and METHODS["stylekd"].student == {"init": "mapping-only"}
    from gancompress.families import build_discriminator_for
    from gancompress.io import save_discriminator
    from gancompress.teachers import discriminator_sibling

    save_discriminator(discriminator_sibling(stylegan2), build_discriminator_for(tiny_stylegan2().config))
    with_d = parse_plan(str(stylegan2), ["0.5"], ["cagan", "gan-compression", "distill"], "quick", TINY, 16, None)
    assert with_d["teacher_discriminator"]["file"] == "sg2-D.safetensors"
    assert [_train_config(with_d, m, "stylegan2").d_init for m in ("cagan", "gan-compression", "distill")] == [
        "teacher", "teacher", "auto"]
    gan_compression = _train_config(plan, "gan-compression", "stylegan2")
    assert (gan_compression.l1, gan_compression.feat, gan_compression.adv_loss) == (10, 0.01, "hinge")
    assert METHODS["gan-compression"].student == {"init": "random"}  # features through adapters, not kept channels
    assert _train_config(plan, "pruned-only", "stylegan2") is None
    # DCGAN teachers get the loss weights, not StyleGAN2's terms; StyleKD needs a mapping network
    dcgan = save_generator(tmp_path / "dcgan.safetensors", tiny_generator(channels=(32, 16, 16)))
    dcgan_cagan = _train_config(plan, "cagan", "dcgan")
    assert dcgan_cagan.l1 == 3 and dcgan_cagan.style_mixing == 0 and dcgan_cagan.lr_g == 1e-3
    with pytest.raises(SweepError, match="method 'stylekd' is for stylegan2 teachers"):
        parse_plan(str(dcgan), ["0.5"], ["distill", "stylekd"], "quick", TINY, 16, None)
    # pruned-only: the pruned student, written without training
    pruned_plan = parse_plan(str(stylegan2), ["0.5"], ["pruned-only"], "quick", TINY, 16, None)
    out = prepare_sweep_dir(pruned_plan, tmp_path / "s")
    run_dir, trainer = train_pair(pruned_plan, out, 0.5, "pruned-only", log=lambda m: None)
    assert trainer is None and not (run_dir / "checkpoints").exists()
    student = load_generator(run_dir / "student.safetensors")
    pruned, _ = prune_generator(load_generator(stylegan2), width=0.5)
    assert isinstance(student.config, StyleGAN2Config)
    assert all(torch.equal(a, b) for a, b in zip(student.state_dict().values(), pruned.state_dict().values()))
