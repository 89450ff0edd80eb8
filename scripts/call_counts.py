"""How much of each lesson is the libraries it teaches, and how much is the course's own helpers: calls in the code
cells, counted by where the called name comes from (issue 16).

- library: a call to a name imported from transformers, peft, trl, datasets, unsloth or accelerate
  (`SFTTrainer(...)`, `FastLanguageModel.from_pretrained(...)`), or a method of an object such a call made
  (`trainer.train()`, `tokenizer.apply_chat_template(...)`);
- ftlab: a call to a name imported from ftlab (`sft.sft_config(...)`, `chat.accuracy(...)`, `ftlab.setup()`);
- recipe: the same two counts over the cells tagged `recipe` only (the cells tests/test_recipes.py runs outside the
  course).
Python's own calls, torch's and matplotlib's are neither. The count reads the code as text (AST): a name that is
assigned twice takes the kind of its last assignment above the call.

    python scripts/call_counts.py [notebooks/*.ipynb]
"""
import ast
import json
import sys
from pathlib import Path

LIBRARIES = {"transformers", "peft", "trl", "datasets", "unsloth", "accelerate"}


def cell_sources(notebook, tag=None):
    cells = json.loads(Path(notebook).read_text())["cells"]
    return ["".join(c["source"]) for c in cells
            if c["cell_type"] == "code" and (tag is None or tag in c.get("metadata", {}).get("tags", []))]


def _root(node):
    """The name a called expression starts from: `a` for a.b.c(...), a(...)(...), a[0].b(...)."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def count_calls(sources):
    """{"library": n, "ftlab": n} over the code of `sources`, read in order (later cells see earlier names)."""
    kinds, counts = {}, {"library": 0, "ftlab": 0}
    for source in sources:
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
        for node in ast.walk(tree):  # imports first: a cell may use a name it imports further down
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    kinds[alias.asname or top] = "ftlab" if top == "ftlab" else "library" if top in LIBRARIES else None
            elif isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                kind = "ftlab" if top == "ftlab" else "library" if top in LIBRARIES else None
                for alias in node.names:
                    kinds[alias.asname or alias.name] = kind
        for node in sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.Call))),
                           key=lambda n: (n.lineno, n.col_offset)):
            if isinstance(node, ast.Call):
                kind = kinds.get(_root(node.func))
                if kind:
                    counts[kind] += 1
            elif isinstance(node.value, ast.Call):  # x = Lib(...) makes x a library object
                kind = "library" if kinds.get(_root(node.value.func)) == "library" else None
                for target in node.targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            kinds[name.id] = kind
    return counts


def main(paths):
    paths = paths or sorted(Path(__file__).resolve().parents[1].glob("notebooks/[0-9][0-9]_*.ipynb"))
    print("| lesson | library calls | ftlab calls | recipe cells: library | recipe cells: ftlab |")
    print("|---|---|---|---|---|")
    for path in map(Path, paths):
        whole, recipe = count_calls(cell_sources(path)), count_calls(cell_sources(path, "recipe"))
        print(f"| {path.stem} | {whole['library']} | {whole['ftlab']} | {recipe['library']} | {recipe['ftlab']} |")


if __name__ == "__main__":
    main(sys.argv[1:])
