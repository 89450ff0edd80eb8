"""Checks for exercises/00_welcome: the course world and its data checks."""
import json
from pathlib import Path

from .. import data, world
from . import close, expect, fail, number, passed


def happy_share(share):
    """Exercise 1: the share of the corpus's stories that end happily."""
    value = number(share, "happy_share")
    kinds = [world.ending_kind(row["text"]) for row in data.read("corpus", "train")]
    stories = [kind for kind in kinds if kind is not None]
    happy = stories.count("happy")
    if close(value, happy):
        fail(f"{value:g} is the number of happy stories, not their share", "divide by the number of stories")
    if close(value, 100 * happy / len(stories), rel=1e-3):
        fail(f"{value:g} looks like a percentage", "give a share between 0 and 1 (0.5, not 50)")
    if close(value, happy / len(kinds)):
        fail(f"{value:.4f} divides by every document of the corpus, and most documents are sums and facts",
             "divide by the stories only: the documents whose `world.ending_kind(text)` is not None")
    expect(close(value, happy / len(stories)),
           f"{value:.4f} is not the share of the corpus's stories that end happily "
           f"({'too high' if value > happy / len(stories) else 'too low'})",
           "a story is a document whose `world.ending_kind(text)` is not None; the share is "
           "(stories whose kind is 'happy') / (stories)")
    passed(f"{happy:,} of the {len(stories):,} stories end happily: {value:.1%}. The other documents "
           f"({len(kinds) - len(stories):,}) are sums and facts.")


def empty_answer_error(error, path):
    """Exercise 2: the DataError that `data.read` raises on a file whose row 1 has an empty assistant answer."""
    path = Path(path)
    expect(path.is_file(), f"there is no file at {path}", "write the broken row to `path` first (path.write_text)")
    expect(isinstance(error, data.DataError),
           f"`error` is {type(error).__name__}: {error!r:.80}, not the DataError that data.read raises",
           "call data.read('sft', 'train', path) inside try: ... except data.DataError as err: and keep `err`")
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    messages = json.loads(first_line).get("messages", [])
    expect(any(isinstance(m, dict) and m.get("role") == "assistant" and str(m.get("content")).strip() == ""
               for m in messages),
           f"row 1 of {path} has no assistant message with an empty answer: {first_line[:120]}",
           'end the row\'s messages with {"role": "assistant", "content": ""}')
    try:
        data.read("sft", "train", path)
    except data.DataError as err:
        reference = str(err)
    else:
        fail(f"data.read accepts {path}", "the file must hold the broken row")
    expect("content" in reference and "is empty" in reference,
           f"data.read stops at another problem of the row first: {reference}",
           "give the row everything else it needs: a user message, a task ('math') and an answer")
    expect(str(error) == reference, f"`error` says {str(error)!r}, but reading {path} says {reference!r}",
           "keep the error that data.read raised on this very file")
    passed(f"data.read names file, row and field: {reference}")
