"""The ftlab command line: `ftlab data` rewrites data/, `ftlab base-model` builds the course base model,
`ftlab sft --config FILE` runs lesson 02's SFT from a run config (on as many processes as a launcher starts),
`ftlab processes` checks a launch, `ftlab llamafactory-export` prepares the LLaMA-Factory configs' data and models,
`ftlab finetune --data FILE` fine-tunes on a dataset of yours as lesson 14 does."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ftlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("data", help="regenerate the course datasets under data/ from their seeded generators")
    base = commands.add_parser("base-model", help="build the course base model into artifacts/base (cpu profile)")
    base.add_argument("--force", action="store_true", help="rebuild even when a cached model fits the recipe")
    sft = commands.add_parser("sft", help="lesson 02's SFT run from a run config; under `accelerate launch` or "
                                          "`torchrun`, on every process they start")
    sft.add_argument("--config", required=True, help="the run config, e.g. configs/sft.yaml")
    sft.add_argument("--output-dir", help="instead of the config's output_dir (relative to the repository root)")
    commands.add_parser("processes", help="print this process's rank and the number of processes: run it under a "
                                          "launcher to check the launch")
    commands.add_parser("llamafactory-export", help="write the course datasets for LLaMA-Factory, with its "
                                                    "dataset_info.json, and build the models its configs start from")
    finetune = commands.add_parser("finetune", help="lesson 14 on a file of yours: load, check, deduplicate, split, "
                                                    "LoRA, evaluate, merge, export (exit status 1 when a check fails)")
    finetune.add_argument("--data", required=True, help="a .json, .jsonl or .csv file (openai, sharegpt, alpaca or "
                                                        "prompt_completion rows)")
    finetune.add_argument("--format", choices=["openai", "sharegpt", "alpaca", "prompt_completion"],
                          help="instead of telling the format from the first row's fields")
    finetune.add_argument("--model", help="a folder or hub id; default: the profile's chat model")
    finetune.add_argument("--output", help="where the merged model and the GGUF file go (default: artifacts/own-data)")
    finetune.add_argument("--check-only", action="store_true", help="stop after the checks")
    args = parser.parse_args(argv)

    if args.command == "data":
        from . import data

        from . import own_data

        for path in data.write() + own_data.write_examples():
            print(f"wrote {path}")
    elif args.command == "base-model":
        from .profiles import setup

        setup("cpu")
        from . import base_model

        if args.force or not base_model.is_cached():
            base_model.build_base_model()
        print(f"course base model ready in {base_model.BASE_DIR}")
    elif args.command == "sft":
        from .launch import run_sft

        run_sft(args.config, args.output_dir)
    elif args.command == "processes":
        from .launch import report_processes

        report_processes()
    elif args.command == "llamafactory-export":
        from .profiles import setup

        setup("cpu")
        from . import base_model, llamafactory, sft

        for path in llamafactory.export():
            print(f"wrote {path}")
        if not base_model.is_cached():
            base_model.build_base_model()
        if not sft.is_cached():
            sft.build_sft_model()
        print(f"the configs in configs/llamafactory/ start from {base_model.BASE_DIR} and {sft.SFT_DIR}")
    elif args.command == "finetune":
        from .data import DataError
        from .finetune import print_summary, run

        try:
            summary = run(args.data, args.format, args.model, args.check_only, args.output)
        except DataError as err:
            sys.exit(f"ftlab finetune: {err}")
        print_summary(summary)
        if summary["problems"]:
            sys.exit(1)


if __name__ == "__main__":
    main()
