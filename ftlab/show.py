"""Showing things in a notebook: tables and the source of ftlab functions."""
import inspect

from IPython.display import Markdown, display


def table(rows, headers):
    """Display rows as a Markdown table (it renders in JupyterLab, Colab and on code hosts)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    display(Markdown("\n".join(lines)))


def source(obj):
    """Display the source code of an ftlab function or class: the plumbing is there to be read."""
    display(Markdown(f"```python\n{inspect.getsource(obj)}```"))
