"""The ftlab command line: `ftlab data` rewrites data/, `ftlab base-model` builds the course base model."""
import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ftlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("data", help="regenerate the course datasets under data/ from their seeded generators")
    base = commands.add_parser("base-model", help="build the course base model into artifacts/base (cpu profile)")
    base.add_argument("--force", action="store_true", help="rebuild even when a cached model fits the recipe")
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


if __name__ == "__main__":
    main()
