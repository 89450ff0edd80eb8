"""Checks for exercises/02_sft: the assistant-only loss mask, labels from it, and when early stopping stops."""
from types import SimpleNamespace

from transformers import EarlyStoppingCallback, TrainerControl, TrainerState

from ..chat import encode
from ..tokenizer import TURN_END
from . import expect, fail, passed

CONVERSATION = [{"role": "user", "content": "What is 3+4?"}, {"role": "assistant", "content": "3+4=7"}]


def _encoded(tokenizer, conversation):
    out = encode(tokenizer, conversation)
    return out["input_ids"], out["completion_mask"]


def trained_tokens(n, tokenizer, conversation=CONVERSATION):
    """Exercise 1: how many tokens of `conversation` the assistant-only loss trains on."""
    ids, mask = _encoded(tokenizer, conversation)
    reference = sum(mask)
    expect(isinstance(n, int) and not isinstance(n, bool), f"`n_trained` should be a whole number, not {n!r}",
           "count the tokens whose mask is 1")
    if n == len(ids):
        fail(f"{n} is every token of the conversation, the chat template's and the question's too",
             "count only the tokens the loss is taken on: those marked trained by sft.loss_mask")
    answer = tokenizer(conversation[-1]["content"], add_special_tokens=False).input_ids
    if n == len(answer) and n != reference:
        fail(f"{n} counts the answer's own tokens but not the end of the turn",
             f"{TURN_END} is trained too: it is how the model learns to stop")
    expect(n == reference, f"{n} is not the number of tokens in the loss ({'too many' if n > reference else 'too few'})",
           "sft.loss_mask(tokenizer, conversation) gives (token, id, trained) for every token; count the trained ones")
    passed(f"{n} of the {len(ids)} tokens are in the loss: the answer, {TURN_END} and the line break after it")


def labels_from_mask(make_labels, tokenizer, conversation=CONVERSATION):
    """Exercise 2: `make_labels(input_ids, assistant_mask)` gives the labels of the assistant-only loss."""
    ids, mask = _encoded(tokenizer, conversation)
    got = make_labels(ids, mask)
    got = got.tolist() if hasattr(got, "tolist") else list(got)
    expect(len(got) == len(ids), f"{len(got)} labels for {len(ids)} tokens", "one label per token")
    if got == [-100 if m else t for t, m in zip(ids, mask)]:
        fail("your labels keep the prompt and hide the answer", "keep the token where the mask is 1")
    for fill in {0, tokenizer.pad_token_id}:
        if got == [t if m else fill for t, m in zip(ids, mask)]:
            fail(f"your labels put {fill} where the loss should ignore a token, but {fill} is a real token id",
                 "-100 is the label that the cross-entropy of PyTorch (and every Trainer) ignores")
    expected = [t if m else -100 for t, m in zip(ids, mask)]
    if got != expected:
        i = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        fail(f"label {i} (token {tokenizer.decode([ids[i]])!r}) is {got[i]}, expected {expected[i]}",
             "the token id where the mask is 1, -100 where it is 0")
    passed(f"labels: {sum(label != -100 for label in got)} tokens learned, {got.count(-100)} ignored (-100)")


def _trainer_stops_at(eval_losses, patience):
    """The evaluation (1-based) after which transformers' EarlyStoppingCallback stops training, or None:
    the callback driven as the Trainer drives it (on_evaluate, then the best metric updated)."""
    callback = EarlyStoppingCallback(early_stopping_patience=patience)
    args = SimpleNamespace(metric_for_best_model="eval_loss", greater_is_better=False)
    state, control = TrainerState(), TrainerControl()
    for n, loss in enumerate(eval_losses, start=1):
        callback.on_evaluate(args, state, control, metrics={"eval_loss": loss})
        if control.should_training_stop:
            return n
        if state.best_metric is None or loss < state.best_metric:
            state.best_metric = loss
    return None


CASES = [([1.0, 0.8, 0.7, 0.65], 1), ([1.0, 0.8, 0.85, 0.9, 0.95], 2), ([1.0, 0.8, 0.85, 0.79, 0.9, 0.95], 2),
         ([1.0, 0.9, 0.9, 0.9], 2), ([0.6, 0.7, 0.5, 0.55, 0.52, 0.51], 3), ([0.9, 0.95], 1)]


def early_stopping_step(stops_at):
    """Exercise 3: `stops_at(eval_losses, patience)` is the evaluation at which early stopping ends training."""
    for losses, patience in CASES:
        got, expected = stops_at(list(losses), patience), _trainer_stops_at(losses, patience)
        if got != expected:
            fail(f"eval losses {losses} with patience {patience}: you say {got}, the Trainer's "
                 f"EarlyStoppingCallback stops after evaluation {expected}",
                 "count the evaluations since the best loss so far; a loss equal to the best is no improvement; "
                 "stop when the count reaches the patience; return None when training runs to the end")
    passed(f"your rule stops where transformers' EarlyStoppingCallback stops, in all {len(CASES)} cases")
