"""Models the course builds once and reuses (base, SFT, reward model): each is saved beside the recipe that
made it, and a lesson rebuilds it, with the code of the lesson that made it, when the recipe has changed."""
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
