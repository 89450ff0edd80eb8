"""How many parameters a model holds and how many of them train: the one count every lesson uses.

(What a configuration implies before any model is built, LoRA's r * (in + out) included, is arithmetic on its
shapes: ftlab.memory.)
"""


def trainable_parameters(model):
    """(trainable, total). A PEFT model reports PEFT's own count (a 4-bit weight counts as the two parameters it
    packs into one byte); any other model counts each distinct parameter once (tied embeddings are one matrix)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
