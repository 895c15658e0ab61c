"""One table for one student size, from the rows of several classifier-KD studies.

Each method has the schedule its study gave it (the data rows converge in fewer steps than the
data-free ones), so one study per schedule ran them; this script puts the settings it is told to take
from each study into one table with the issue's targets. It reads only the committed rows and plans
(rows/*.json, plan.json), trains nothing, and refuses studies of another teacher, student width or
batch size. A study whose seeds are not all done is counted with the seeds it has, and said so.

  python eval/classifier_kd_summary.py --out eval/results/classifier_kd_fmnist/width05 \\
      --take eval/results/classifier_kd_fmnist_w05_2k:alone,hinton,logit-mse,adversarial,ard \\
      --take eval/results/classifier_kd_fmnist_w05_2k_gen:gen-dcgan,gen-stylegan2,gen-cdcgan \\
      --take eval/results/classifier_kd_fmnist_w05_16k:gen-dcgan-fm \\
      --take eval/results/classifier_kd_fmnist_w05_16k_pools:gen-cdcgan-fm,gen-stylegan2-fm \\
      --take eval/results/classifier_kd_fmnist_w05_dfad:dfad-bn-tanh-replay

(the committed summary)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from classifier_kd import aggregate, table_lines, target_lines, targets

from gancompress.io import atomic_write_text
from gancompress.study import Study

SAME = ("teacher", "width", "batch_size")  # what every study taken must share


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--take", action="append", required=True, metavar="STUDY_DIR:SETTING[,SETTING...]",
                   help="the settings to take from one study (repeat for each study)")
    p.add_argument("--out", type=Path, required=True, help="folder for summary.md and summary.json")
    args = p.parse_args(argv)
    command = "python eval/classifier_kd_summary.py " + " ".join(sys.argv[1:] if argv is None else argv)

    rows, settings, steps, sources, plans, missing, robust_pgd = [], [], [], [], [], [], set()
    for take in args.take:
        study_dir, _, names = take.rpartition(":")
        study_dir = Path(study_dir)
        if not (study_dir / "plan.json").is_file():
            p.error(f"--take {take}: {study_dir} holds no plan.json; name a folder that eval/classifier_kd.py wrote")
        plan = json.loads((study_dir / "plan.json").read_text())
        if plans and any(plan[k] != plans[0][k] for k in SAME):
            p.error(f"--take {take}: {study_dir} has {', '.join(f'{k} {plan[k]}' for k in SAME)}, the first study "
                    f"{', '.join(f'{k} {plans[0][k]}' for k in SAME)}; a summary is for one teacher and student size")
        plans.append(plan)
        study = Study(study_dir, plan)  # read only: its row files, never opened for writing
        for setting in (n for n in names.split(",") if n):
            if setting not in plan["settings"]:
                p.error(f"--take {take}: {study_dir} did not plan {setting}; it planned {', '.join(plan['settings'])}")
            if setting in settings:
                p.error(f"--take {take}: {setting} is taken twice; take each setting from one study")
            names_planned = [f"{setting}-s{seed}" for seed in plan["seeds"]]
            done = {n for n in names_planned if study.done(n)}
            found = [json.loads(study.row_file(n).read_text()) for n in names_planned if n in done]
            missing += [n for n in names_planned if n not in done]
            if not found:
                p.error(f"--take {take}: no row of {setting} is done in {study_dir}; run its study first")
            rows += found
            if any(r["robust_accuracy"] is not None for r in found):
                robust_pgd.add(tuple(plan["pgd"]))
            settings.append(setting)
            steps.append(plan["steps"])
            sources.append(study_dir.name)
    teacher_acc = next(r["teacher_accuracy"] for r in rows if r["teacher_accuracy"])
    table = aggregate(rows, settings, teacher_acc)
    verdicts = targets(table, rows)
    n_seeds = max(len(plan["seeds"]) for plan in plans)
    record = {"command": command, "teacher": plans[0]["teacher"], "width": plans[0]["width"],
              "batch_size": plans[0]["batch_size"], "teacher_accuracy": teacher_acc,
              "table": [{**t, "steps": n, "study": src} for t, n, src in zip(table, steps, sources)],
              "rows_missing": missing, "targets": verdicts}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "summary.json", json.dumps(record, indent=2) + "\n")
    lines = [f"# Classifier distillation on Fashion-MNIST, one student size ({plans[0]['teacher']} -> width "
             f"{plans[0]['width']})", "", f"Command: `{command}`", "",
             *([f"**Partial**: rows not yet done: {', '.join(missing)}.", ""] if missing else []),
             f"Teacher test accuracy {100 * teacher_acc:.2f}%. Every student has the same architecture "
             f"({table[0]['params']:,} parameters) and batch {plans[0]['batch_size']}; each setting ran for the steps "
             "its study gave it (column steps), over the seeds done (mean +- std); test split of 10,000 images; "
             "robust accuracy under L-infinity PGD ([0, 1] pixels) " +
             ("; ".join(f"eps {e:g}, {n} steps" for e, n in sorted(robust_pgd)) or "(not measured)") + ". Each study's own results.md has its command and any settings not taken here.", "",
             *table_lines(table, {"steps": [str(n) for n in steps], "study": sources}), "", *target_lines(verdicts, n_seeds)]
    atomic_write_text(args.out / "summary.md", "\n".join(lines) + "\n")
    print(args.out / "summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
