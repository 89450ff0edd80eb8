"""Models the course builds once and reuses (base, SFT, early SFT, reward model, the real model converted from
GGUF): each is saved beside the recipe that made it, and rebuilt, by the code that made it, when the recipe has
changed or the folder is missing."""
import json

from .paths import atomic_dir


def save_with_recipe(model, tokenizer, log_history, target, recipe):
    """Save model (safetensors), tokenizer, training log and recipe together, atomically."""
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "log_history.json").write_text(json.dumps(log_history, indent=1))
        (tmp / "recipe.json").write_text(json.dumps(recipe, indent=1))
    return target


def built_from(target, recipe):
    """True when `target` holds a model saved from exactly `recipe`."""
    try:
        return json.loads((target / "recipe.json").read_text()) == recipe
    except (OSError, ValueError):
        return False


def ensure(target, recipe, build, what):
    """`target`, first built by `build(target)` when it holds no model of `recipe`; `what` names the model and its
    cost, for the message shown while it is built ("the course base model as lesson 01 does, about 2 minutes")."""
    if not built_from(target, recipe):
        print(f"Building {what} into {target}: it is not there yet, or was made by another recipe.")
        build(target)
    return target
