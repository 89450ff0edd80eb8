"""The learning rates that lessons 07 and 11 train with, chosen on the validation split: `make lr-select` (issue 15).

Lesson 07 races the PEFT methods with the same steps, batch and chats and lets each choose one thing, its learning
rate (`ftlab.peft_compare.LEARNING_RATES`); lesson 11 trains GRPO at its profile's rate. This script makes those
choices the way they should be made: it runs the lesson's own cells (its models, configs and trainers), at the
lesson's rate and at the half-decades around it, and scores each run on the **validation** split, the one a choice
may be made on. The lessons report the test split, which no choice has seen. Where the best rate is at the edge of
what was tried, the search goes one half-decade further; a tie keeps the lesson's rate.

- 07: the answer loss on validation chats after each method's run (lower is better);
- 11: greedy exact-answer accuracy on the validation sums after GRPO (higher is better).

The tables go to docs/lr-select-<lesson>-<profile>.md (and .json).

    python scripts/lr_select.py --lesson 07 --profile cpu     # about 5 minutes on 2 cores
    python scripts/lr_select.py --lesson 11 --profile cpu     # about 9 minutes
    python scripts/lr_select.py --lesson 07 --profile real    # about 6 minutes
    python scripts/lr_select.py --lesson 11 --profile real    # about 13 minutes
"""
import argparse
import dataclasses
import json
import math
import os
import time

import nbformat

from ftlab.paths import NOTEBOOKS_DIR, ROOT

HALF_DECADE = 10 ** 0.5


def code_cells(lesson):
    path = next(NOTEBOOKS_DIR.glob(f"{lesson}_*.ipynb"))
    return path, [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def run_cells(lesson, namespace, until=None, only=None):
    """Run the lesson's code cells in `namespace`: every cell up to the first that contains `until`, or the first
    cell that contains `only`."""
    path, cells = code_cells(lesson)
    if only:
        cells = [next(source for source in cells if only in source)]
    else:
        cells = cells[:next(i for i, source in enumerate(cells) if until in source) + 1]
    for source in cells:
        exec(compile(source, str(path), "exec"), namespace)


def with_rate(P, stage, rate):
    """The profile with one stage's learning rate replaced."""
    return dataclasses.replace(P, stages={**P.stages, stage: dataclasses.replace(P.stage(stage), learning_rate=rate)})


def rounded(rate):
    """The nearest point of the half-decade grid, by its usual name: 1e-3 * 10**0.5 -> 3e-3, 3e-3 * 10**0.5 -> 1e-2."""
    return float(f"{10 ** (round(2 * math.log10(rate)) / 2):.0e}")


class PeftRace:
    """Lesson 07: each method trained as the lesson trains it, scored by the answer loss on validation chats."""
    lesson, measure, lower_is_better = "07", "validation answer loss", True

    def __init__(self):
        from ftlab import data
        from ftlab.peft_train import held_out_by_task

        self.ns = {}
        run_cells(self.lesson, self.ns, until="def build(")  # P, START, tokenizer, train_chats, PEFT_CONFIGS, build
        run_cells(self.lesson, self.ns, only="def training_args(")  # the race's SFTConfig
        P = self.ns["P"]
        by_task = held_out_by_task(data.load("sft")["validation"], per_task=None if P.course_model else 10)
        # the lesson's tasks that the validation split has (it holds no fact chats: data/README.md says why)
        self.validation = [r["messages"] for task in self.ns["tasks"] for r in by_task.get(task, [])]
        print(f"{len(self.validation)} validation chats ({', '.join(t for t in self.ns['tasks'] if t in by_task)})",
              flush=True)

    def choices(self):
        from ftlab import peft_compare

        return {method: peft_compare.learning_rate(self.ns["P"], method) for method in self.ns["METHODS"]}

    def score(self, method, rate):
        from ftlab import chat

        self.ns["set_seed"](self.ns["P"].seed)
        model = self.ns["build"](method)
        self.ns["SFTTrainer"](model=model, args=self.ns["training_args"](method, rate),
                              train_dataset=self.ns["train_chats"], processing_class=self.ns["tokenizer"]).train()
        return chat.answer_loss(model, self.ns["tokenizer"], self.validation)


class Grpo:
    """Lesson 11: its start model and GRPO cell run at each rate, scored by accuracy on the validation sums."""
    lesson, measure, lower_is_better = "11", "validation accuracy", False

    def __init__(self):
        from ftlab import rl_start

        self.ns = {}
        run_cells(self.lesson, self.ns, until="from trl import GRPOConfig")  # setup and imports
        self.P = self.ns["P"]
        self.validation = list(rl_start.math_prompts("validation"))
        print(f"{len(self.validation)} validation prompts", flush=True)

    def choices(self):
        return {"GRPO": self.P.stage("grpo").learning_rate}

    def score(self, _, rate):
        from ftlab import chat, stats

        self.ns["P"] = with_rate(self.P, "grpo", rate)
        run_cells(self.lesson, self.ns, only="START = models.start_model")  # a fresh start model
        run_cells(self.lesson, self.ns, only="args = GRPOConfig(")  # the lesson's GRPOConfig and trainer
        graded = chat.grade(self.ns["model"], self.ns["tokenizer"], self.validation)
        return stats.accuracy_interval(graded)[0]


def select(study, name, centre):
    """{rate: score} around the lesson's rate, widened while the best is at an edge (at most four times)."""
    scores = {}
    rates = [rounded(centre / HALF_DECADE), centre, rounded(centre * HALF_DECADE)]
    for _ in range(5):
        for rate in rates:
            if rate not in scores:
                started = time.perf_counter()
                scores[rate] = study.score(name, rate)
                print(f"  {name:18} lr {rate:g}: {study.measure} {scores[rate]:.4f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)
        tried, best = sorted(scores), chosen(study, scores, centre)
        if best == tried[0]:
            rates = [rounded(best / HALF_DECADE)]
        elif best == tried[-1]:
            rates = [rounded(best * HALF_DECADE)]
        else:
            break
    return scores


def chosen(study, scores, centre):
    """The best rate; on a tie, the lesson's own."""
    sign = 1 if study.lower_is_better else -1
    return min(scores, key=lambda rate: (sign * scores[rate], rate != centre))


def report(study, results, centres, seconds):
    P = study.ns["P"]
    lines = [f"# Lesson {study.lesson}'s learning rates, chosen on the validation split ({P.name} profile, seed "
             f"{P.seed})", "",
             f"Made by `scripts/lr_select.py` (`make lr-select`): the lesson's own cells run at its rate and the "
             f"half-decades around it, each run scored by the {study.measure} "
             f"({'lower' if study.lower_is_better else 'higher'} is better). The lesson reports the test split, "
             f"on which nothing was chosen. {seconds / 60:.0f} minutes on 2 cores.", "",
             f"| run | {study.measure} by learning rate | chosen | the lesson's rate when this ran |", "|---|---|---|---|"]
    for name, scores in results.items():
        best = chosen(study, scores, centres[name])
        tried = ", ".join(f"{rate:g}: {value:.4f}" for rate, value in sorted(scores.items()))
        lines.append(f"| {name} | {tried} | {best:g} | {centres[name]:g}"
                     f"{'' if best == centres[name] else ' (differs)'} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", choices=["07", "11"], required=True)
    parser.add_argument("--profile", choices=["cpu", "real"], default="cpu")
    parser.add_argument("--runs", nargs="*", help="some of lesson 07's methods (default: all)")
    args = parser.parse_args()
    os.environ["FTLAB_PROFILE"] = args.profile
    started = time.perf_counter()
    study = {"07": PeftRace, "11": Grpo}[args.lesson]()
    centres = {name: rate for name, rate in study.choices().items() if not args.runs or name in args.runs}
    results = {name: select(study, name, centre) for name, centre in centres.items()}
    out = ROOT / "docs" / f"lr-select-{args.lesson}-{args.profile}"
    out.with_suffix(".json").write_text(json.dumps({name: {f"{r:g}": v for r, v in scores.items()}
                                                    for name, scores in results.items()}, indent=1) + "\n")
    out.with_suffix(".md").write_text(report(study, results, centres, time.perf_counter() - started))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
