"""The ftlab command line: `ftlab data` rewrites data/, `ftlab base-model` builds the course base model,
`ftlab sft --config FILE` runs lesson 02's SFT from a run config (on as many processes as a launcher starts),
`ftlab processes` checks a launch, `ftlab llamafactory-export` prepares the LLaMA-Factory configs' data and models."""
import argparse


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
    args = parser.parse_args(argv)

    if args.command == "data":
        from . import data

        for path in data.write():
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


if __name__ == "__main__":
    main()
