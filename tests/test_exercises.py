"""Every exercise check fails on wrong answers, and says why (ftlab/exercises/).

That each check passes on its solution is proven by autograding the solution notebooks
(exercises/test_assignments.py); here each check meets the usual mistakes, on tiny models built on the spot.
"""
import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from ftlab import adapters, chat, data, ppo, preference, rewards, world
from ftlab.exercises import (lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08,
                             lesson09, lesson10, lesson11, lesson12, lesson13, lesson14)


def fails(check, *args, match):
    """Run a check that must fail; its message must match `match` and carry a hint."""
    with pytest.raises(AssertionError, match=match) as failure:
        check(*args)
    assert "\nHint: " in str(failure.value)


@pytest.fixture(scope="module")
def tokenizer(trained_tokenizer, tmp_path_factory):
    """The course tokenizer, saved and loaded back: it then has a name_or_path, as a cached model's has."""
    folder = tmp_path_factory.mktemp("tokenizer")
    trained_tokenizer.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def tiny_config(tokenizer, **extra):
    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
                       **extra)


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config(tokenizer)).eval()


# ---------------------------------------------------------------- 00 welcome
def test_happy_share_names_the_usual_mistakes():
    kinds = [world.ending_kind(r["text"]) for r in data.read("corpus", "train")]
    stories = [k for k in kinds if k]
    share = stories.count("happy") / len(stories)
    lesson00.happy_share(share)
    fails(lesson00.happy_share, 100 * share, match="percentage")
    fails(lesson00.happy_share, stories.count("happy") / len(kinds), match="every document")
    fails(lesson00.happy_share, stories.count("happy"), match="number of happy stories")
    fails(lesson00.happy_share, share + 0.05, match="too high")
    fails(lesson00.happy_share, "a quarter", match="should be a number")


def test_empty_answer_error_wants_the_real_error(tmp_path):
    path = tmp_path / "sft_train.jsonl"
    row = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": ""}],
           "task": "math", "answer": "4"}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(data.DataError) as caught:
        data.read("sft", "train", path)
    lesson00.empty_answer_error(caught.value, path)
    fails(lesson00.empty_answer_error, ValueError("x"), path, match="not the DataError")
    fails(lesson00.empty_answer_error, data.DataError("row 2"), path, match="keep the error")
    fails(lesson00.empty_answer_error, caught.value, tmp_path / "missing.jsonl", match="no file")
    robot = {"role": "robot", "content": "2+2=4"}
    path.write_text(json.dumps({**row, "messages": [robot] + row["messages"]}) + "\n")
    fails(lesson00.empty_answer_error, caught.value, path, match="another problem")


# ---------------------------------------------------------------- 01 pretraining
def test_perplexity_is_exp_of_the_loss(model, tokenizer):
    ids = tokenizer(lesson01.SENTENCE, return_tensors="pt").input_ids
    loss = model(input_ids=ids, labels=ids).loss.item()
    lesson01.perplexity(math.exp(loss), model, tokenizer)
    fails(lesson01.perplexity, loss, model, tokenizer, match="is the loss")
    fails(lesson01.perplexity, 2 ** loss, model, tokenizer, match="2 \\*\\* loss")
    fails(lesson01.perplexity, math.exp(loss) * 1.1, model, tokenizer, match="not the perplexity")


def test_digit_tokenizer_catches_merged_digits():
    from ftlab.tokenizer import train_tokenizer

    fails(lesson01.digit_tokenizer, train_tokenizer, match="several digits")
    fails(lesson01.digit_tokenizer, lambda texts: "tokenizer", match="not a transformers tokenizer")


def test_next_token_loss_needs_the_shift(model, tokenizer):
    def right(logits, ids):
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))

    lesson01.next_token_loss(right, model, tokenizer)
    fails(lesson01.next_token_loss, lambda lo, ids: F.cross_entropy(lo.reshape(-1, lo.shape[-1]), ids.reshape(-1)),
          model, tokenizer, match="same position")
    fails(lesson01.next_token_loss, lambda lo, ids: F.cross_entropy(lo[:, :-1].reshape(-1, lo.shape[-1]),
                                                                    ids[:, 1:].reshape(-1), reduction="sum"),
          model, tokenizer, match="sum")
    fails(lesson01.next_token_loss, lambda lo, ids: right(lo, ids) + 0.1, model, tokenizer, match="random logits")


# ---------------------------------------------------------------- 02 sft
def test_trained_tokens_counts_the_end_of_turn(tokenizer):
    # the completion after the prompt's common prefix, as TRL finds it: the answer, <|im_end|> and the line break
    out = chat.encode(tokenizer, lesson02.CONVERSATION)
    n = sum(out["completion_mask"])
    answer = tokenizer(lesson02.CONVERSATION[-1]["content"], add_special_tokens=False).input_ids
    assert n == len(answer) + 2
    lesson02.trained_tokens(n, tokenizer)
    fails(lesson02.trained_tokens, len(out["input_ids"]), tokenizer, match="every token")
    fails(lesson02.trained_tokens, len(answer), tokenizer, match="end of the turn")
    fails(lesson02.trained_tokens, n + 2, tokenizer, match="too many")
    fails(lesson02.trained_tokens, 3.5, tokenizer, match="whole number")


def test_labels_from_mask_want_minus_100(tokenizer):
    lesson02.labels_from_mask(lambda ids, mask: [t if m else -100 for t, m in zip(ids, mask)], tokenizer)
    fails(lesson02.labels_from_mask, lambda ids, mask: [t if m else 0 for t, m in zip(ids, mask)], tokenizer,
          match="real token id")
    fails(lesson02.labels_from_mask, lambda ids, mask: [-100 if m else t for t, m in zip(ids, mask)], tokenizer,
          match="hide the answer")
    fails(lesson02.labels_from_mask, lambda ids, mask: list(ids), tokenizer, match="label 0")


def test_early_stopping_rule_is_the_trainers():
    def right(losses, patience):
        best, waited = None, 0
        for n, loss in enumerate(losses, start=1):
            if best is None or loss < best:
                best, waited = loss, 0
            else:
                waited += 1
                if waited >= patience:
                    return n
        return None

    lesson02.early_stopping_step(right)

    def ties_improve(losses, patience):
        best, waited = None, 0
        for n, loss in enumerate(losses, start=1):
            if best is None or loss <= best:
                best, waited = loss, 0
            else:
                waited += 1
                if waited >= patience:
                    return n
        return None

    fails(lesson02.early_stopping_step, ties_improve, match="\\[1.0, 0.9, 0.9, 0.9\\] with patience 2")
    fails(lesson02.early_stopping_step, lambda losses, patience: len(losses), match="EarlyStoppingCallback stops")


# ---------------------------------------------------------------- 03 lora
def test_attention_lora_parameters(model):
    per_layer = sum(8 * (o + i) for o, i in [(32, 32)] * 4)
    lesson03.attention_lora_parameters(2 * per_layer, model)
    fails(lesson03.attention_lora_parameters, per_layer, model, match="one block")
    all_seven = per_layer + 2 * 8 * (32 + 64) + 8 * (64 + 32)
    fails(lesson03.attention_lora_parameters, 2 * all_seven, model, match="all seven")
    fails(lesson03.attention_lora_parameters, 2 * per_layer + 1, model, match="too many")


def test_lora_scale_knows_rslora():
    lesson03.lora_scale(lambda alpha, r, rs: alpha / math.sqrt(r) if rs else alpha / r)
    fails(lesson03.lora_scale, lambda alpha, r, rs: alpha / r, match="square root")
    fails(lesson03.lora_scale, lambda alpha, r, rs: alpha / math.sqrt(r), match="alpha / r")


@pytest.fixture(scope="module")
def lora_model(model):
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    return peft_model


def test_merged_weight_needs_the_scale(lora_model):
    q = lora_model.base_model.model.model.layers[0].self_attn.q_proj
    W, A, B = q.base_layer.weight, q.lora_A["default"].weight, q.lora_B["default"].weight
    lesson03.merged_weight(W + q.scaling["default"] * B @ A, lora_model)
    fails(lesson03.merged_weight, W, lora_model, match="base weight")
    fails(lesson03.merged_weight, W + B @ A, lora_model, match="without the scale")
    fails(lesson03.merged_weight, (A.T @ B.T).T[:, :5], lora_model, match="shape")
    fails(lesson03.merged_weight, W + 3 * B @ A, lora_model, match="differs")


# ---------------------------------------------------------------- 04 memory
def test_memory_checks():
    from ftlab import memory
    from ftlab.architectures import real_config

    states = memory.estimate(real_config("Llama-3.2-1B"), 1, 1, "full", "fp32").optimizer
    lesson04.adamw_bytes(states)
    fails(lesson04.adamw_bytes, states / 2, match="one state per parameter")
    fails(lesson04.adamw_bytes, states / 4, match="counts states")
    fails(lesson04.adamw_bytes, states / 1e9, match="gigabytes")
    fails(lesson04.adamw_bytes, states * 1.5, match="too many")

    plain, checkpointed = lesson04._longest(False), lesson04._longest(True)
    lesson04.longest_sequence(plain, checkpointed)
    fails(lesson04.longest_sequence, plain + 256, checkpointed, match="more than 24 GiB")
    fails(lesson04.longest_sequence, plain - 256, checkpointed, match="and so does")
    fails(lesson04.longest_sequence, plain, checkpointed + 1, match="multiple of 256")

    width = next(h for h in range(64, 8192, 64) if lesson04._ratio(h) <= 0.5)
    lesson04.half_memory_width(width)
    fails(lesson04.half_memory_width, width - 64, match="still needs")
    fails(lesson04.half_memory_width, width + 64, match="already halves")
    fails(lesson04.half_memory_width, width + 1, match="multiple of 64")


# ---------------------------------------------------------------- 05 adapters
def test_pfeiffer_parameters(model):
    per_insertion = 2 * 32 * 16 + 16 + 32
    lesson05.pfeiffer_parameters(2 * per_insertion, model)
    fails(lesson05.pfeiffer_parameters, 4 * per_insertion, model, match="Houlsby")
    fails(lesson05.pfeiffer_parameters, 2 * 2 * 32 * 16, model, match="biases")
    fails(lesson05.pfeiffer_parameters, per_insertion, model, match="one block")


def adapter_class(zero_up=True, act=True, residual=True):
    class Adapter(nn.Module):
        def __init__(self, hidden_size, bottleneck_size):
            super().__init__()
            self.down, self.up = nn.Linear(hidden_size, bottleneck_size), nn.Linear(bottleneck_size, hidden_size)
            if zero_up:
                nn.init.zeros_(self.up.weight)
                nn.init.zeros_(self.up.bias)

        def forward(self, h):
            out = self.up(torch.relu(self.down(h)) if act else self.down(h))
            return h + out if residual else out

    return Adapter


def test_adapter_module_checks_identity_nonlinearity_and_skip():
    lesson05.adapter_module(adapter_class())
    fails(lesson05.adapter_module, adapter_class(zero_up=False), match="changes its input")
    fails(lesson05.adapter_module, adapter_class(act=False), match="no non-linearity")
    fails(lesson05.adapter_module, adapter_class(residual=False), match="shape|changes its input|without h")


def test_stack_for_training(model):
    stacked = copy.deepcopy(model)
    adapters.add_adapter(stacked, "math", 4, "houlsby")
    adapters.add_adapter(stacked, "story", 4, "houlsby")
    fails(lesson05.stack_for_training, stacked, match="active adapters are \\[\\]")
    adapters.enable(stacked, "story", "math")
    fails(lesson05.stack_for_training, stacked, match="story first")
    adapters.enable(stacked, "math", "story")
    fails(lesson05.stack_for_training, stacked, match="math adapter train")
    for name, p in stacked.named_parameters():
        p.requires_grad = ".bottlenecks.story." in name or "embed_tokens" in name
    fails(lesson05.stack_for_training, stacked, match="outside the story adapter")
    for name, p in stacked.named_parameters():
        p.requires_grad = ".bottlenecks.story." in name
    lesson05.stack_for_training(stacked)
    fails(lesson05.stack_for_training, model, match="adapters are \\[\\]")


# ---------------------------------------------------------------- 06 prompt tuning
def test_prompt_parameters(model):
    lesson06.prompt_parameters({4: 4 * 32, 16: 16 * 32, 64: 64 * 32}, model)
    fails(lesson06.prompt_parameters, {4: 4, 16: 16, 64: 64}, model, match="counts vectors")
    fails(lesson06.prompt_parameters, {4: 4 * 32, 16: 16 * 32}, model, match="keys 4, 16 and 64")
    fails(lesson06.prompt_parameters, {4: 4 * 32, 16: 16 * 33, 64: 64 * 32}, model, match="fewer")


def test_text_init_vectors_repeat_the_text(model, tokenizer):
    ids = tokenizer(lesson06.INIT_TEXT)["input_ids"]
    embeddings = model.get_input_embeddings().weight.detach()
    repeated = (ids * math.ceil(40 / len(ids)))[:40]
    lesson06.text_init_vectors(embeddings[repeated], model, tokenizer)
    padded = torch.cat([embeddings[ids], torch.zeros(40 - len(ids), 32)])
    fails(lesson06.text_init_vectors, padded, model, tokenizer, match="repeat")
    fails(lesson06.text_init_vectors, embeddings[repeated][:16], model, tokenizer, match="shape")


def test_soft_prompt_logits(model):
    def right(m, prompt, ids):
        embeds = torch.cat([prompt.expand(ids.shape[0], -1, -1), m.get_input_embeddings()(ids)], dim=1)
        return m(inputs_embeds=embeds).logits[:, prompt.shape[0]:]

    lesson06.soft_prompt_logits(right, model)
    fails(lesson06.soft_prompt_logits, lambda m, p, ids: m(inputs_embeds=torch.cat(
        [p.expand(ids.shape[0], -1, -1), m.get_input_embeddings()(ids)], dim=1)).logits, model, match="virtual tokens")
    fails(lesson06.soft_prompt_logits, lambda m, p, ids: m(input_ids=ids).logits, model, match="differ from PEFT")


# ---------------------------------------------------------------- 08 reward modeling
PAIR = {"prompt": [{"role": "user", "content": "Tell me a story."}],
        "chosen": [{"role": "assistant", "content": "Max was happy. The end."}],
        "rejected": [{"role": "assistant", "content": "Max cried. The end."}], "kind": "ending"}


@pytest.fixture(scope="module")
def reward_model(tokenizer):
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(tokenizer, num_labels=1)).eval()
    with torch.no_grad():
        model.score.weight.normal_(std=3.0)  # decided scores: P(chosen) far from 1/2, as after training
    return model


def test_preference_probability(reward_model, tokenizer):
    chosen, rejected = (s.item() for s in rewards.pair_scores(reward_model, tokenizer, [PAIR]))
    p = torch.sigmoid(torch.tensor(chosen - rejected)).item()
    lesson08.preference_probability(p, reward_model, tokenizer, PAIR)
    fails(lesson08.preference_probability, chosen - rejected, reward_model, tokenizer, PAIR, match="score difference")
    fails(lesson08.preference_probability, 1 - p, reward_model, tokenizer, PAIR, match="rejected reply")
    fails(lesson08.preference_probability, p + 0.2, reward_model, tokenizer, PAIR, match="not the Bradley-Terry")


def test_margin_loss():
    lesson08.margin_loss(lambda c, r, m: -F.logsigmoid(c - r - m).mean())
    fails(lesson08.margin_loss, lambda c, r, m: -F.logsigmoid(c - r + m).mean(), match="helps the pair")
    fails(lesson08.margin_loss, lambda c, r, m: -F.logsigmoid(c - r).mean(), match="ignores the margin")
    fails(lesson08.margin_loss, lambda c, r, m: -F.logsigmoid(c - r - m).sum(), match="sum")


def test_most_wrong(reward_model, tokenizer):
    rows = data.read("preferences", "test")[:24]
    chosen, rejected = rewards.pair_scores(reward_model, tokenizer, rows)
    gaps = chosen - rejected
    lesson08.most_wrong(gaps.argsort()[:5].tolist(), reward_model, tokenizer, rows)
    fails(lesson08.most_wrong, gaps.argsort(descending=True)[:5].tolist(), reward_model, tokenizer, rows,
          match="right most confidently")
    fails(lesson08.most_wrong, gaps.argsort()[:4].tolist(), reward_model, tokenizer, rows, match="4 indices")
    fails(lesson08.most_wrong, gaps.argsort()[1:6].tolist(), reward_model, tokenizer, rows, match="more negative|ranked right")


# ---------------------------------------------------------------- 09 ppo
def test_kl_rewards():
    expected, kl = ppo.kl_penalised_rewards(lesson09.LOGPROBS, lesson09.REF_LOGPROBS, lesson09.SCORES, lesson09.MASK,
                                            lesson09.KL_COEF)
    lesson09.kl_rewards(expected)
    wrong_sign = expected + 2 * lesson09.KL_COEF * kl
    fails(lesson09.kl_rewards, wrong_sign, match="penalty")
    on_padding = -lesson09.KL_COEF * kl
    on_padding[0, 2] += 2.0
    on_padding[1, 2] += -1.0
    fails(lesson09.kl_rewards, on_padding, match="padding")
    fails(lesson09.kl_rewards, expected[:, :2], match="shape")


def test_happy_score():
    def right(prompts, replies):
        return torch.tensor([1.0 if world.ending_kind(r) == "happy" else 0.0 for r in replies])

    lesson09.happy_score(right)
    fails(lesson09.happy_score, lambda p, replies: [1.0] * len(replies), match="float tensor")
    fails(lesson09.happy_score, lambda p, replies: torch.tensor([float("happy" in r) for r in replies]), match="scores")
    fails(lesson09.happy_score, lambda p, replies: torch.tensor([float(world.ending_kind(r) is not None) for r in replies]),
          match="scores 1.0, expected 0.0")


def test_gae():
    lesson09.gae(ppo.gae)

    def ignores_mask(rewards_, values, mask, gamma, lam):
        return ppo.gae(rewards_, values, torch.ones_like(mask), gamma, lam)

    fails(lesson09.gae, ignores_mask, match="shorter ones")
    fails(lesson09.gae, lambda r, v, m, g, lam: ppo.gae(r, v, m, lam, g), match="advantages differ")
    fails(lesson09.gae, lambda r, v, m, g, lam: ppo.gae(r, v, m, g, lam)[0], match="returned Tensor")


# ---------------------------------------------------------------- 10 dpo
def test_dpo_loss_by_hand():
    c, r, rc, rr, beta = (lesson10.POLICY_CHOSEN, lesson10.POLICY_REJECTED, lesson10.REF_CHOSEN, lesson10.REF_REJECTED,
                          lesson10.BETA)
    gap = (c - rc) - (r - rr)
    lesson10.dpo_loss_by_hand(-F.logsigmoid(torch.tensor(beta * gap)).item())
    fails(lesson10.dpo_loss_by_hand, -F.logsigmoid(torch.tensor(gap)).item(), match="beta")
    fails(lesson10.dpo_loss_by_hand, -F.logsigmoid(torch.tensor(beta * (c - r))).item(), match="reference")
    fails(lesson10.dpo_loss_by_hand, F.logsigmoid(torch.tensor(beta * gap)).item(), match="negative")


def test_implicit_accuracy(model, tokenizer):
    torch.manual_seed(3)
    reference = LlamaForCausalLM(tiny_config(tokenizer)).eval()
    rows = data.read("preferences", "test")[:16]
    prompts = [r["prompt"] for r in rows]
    logps = {(m, side): preference.reply_logps(net, tokenizer, prompts, [r[side][-1]["content"] for r in rows])
             for m, net in (("policy", model), ("reference", reference)) for side in ("chosen", "rejected")}
    margin = (logps["policy", "chosen"] - logps["reference", "chosen"]) - (
        logps["policy", "rejected"] - logps["reference", "rejected"])
    accuracy = (margin > 0).float().mean().item()
    lesson10.implicit_accuracy(accuracy, model, reference, tokenizer, rows)
    plain = (logps["policy", "chosen"] > logps["policy", "rejected"]).float().mean().item()
    if plain != accuracy:
        fails(lesson10.implicit_accuracy, plain, model, reference, tokenizer, rows, match="alone")
    fails(lesson10.implicit_accuracy, 100 * accuracy, model, reference, tokenizer, rows, match="percentage")


def test_ipo_loss():
    lesson10.ipo_loss(lambda pc, pr, rc, rr, beta: (((pc - rc) - (pr - rr) - 1 / (2 * beta)) ** 2).mean())
    fails(lesson10.ipo_loss, lambda pc, pr, rc, rr, beta: ((beta * ((pc - rc) - (pr - rr)) - 1 / (2 * beta)) ** 2).mean(),
          match="as DPO does")
    fails(lesson10.ipo_loss, lambda pc, pr, rc, rr, beta: (((pc - rc) - (pr - rr) - 1 / beta) ** 2).mean(),
          match="target")


# ---------------------------------------------------------------- 11 grpo
def test_advantages_by_hand():
    rewards_ = torch.tensor(lesson11.GROUP)
    lesson11.advantages_by_hand(preference.group_advantages(rewards_, 4).tolist())
    fails(lesson11.advantages_by_hand, (rewards_ - rewards_.mean()).tolist(), match="not scaled")
    fails(lesson11.advantages_by_hand, ((rewards_ - rewards_.mean()) / (rewards_.std(unbiased=False) + 1e-4)).tolist(),
          match="population")


def test_zero_std_share():
    lesson11.zero_std_share(lambda r, g: (r.view(-1, g).std(dim=1) == 0).float().mean().item())
    fails(lesson11.zero_std_share, lambda r, g: (r.view(-1, g).std(dim=1) > 0).float().mean().item(), match="DO teach")
    fails(lesson11.zero_std_share, lambda r, g: (r.view(g, -1).std(dim=0) == 0).float().mean().item(), match="expected")


def test_sample_and_score(model, tokenizer):
    rows = [{"prompt": [{"role": "user", "content": f"What is {a}+{b}?"}], "task": "math", "answer": str(a + b)}
            for a, b in [(1, 2), (3, 4), (2, 2)]]

    def sample(m, tok, rows_, g, do_sample=True, answers_by_row=True):
        tok.padding_side = "left"
        texts = [tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in rows_]
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        if do_sample:
            out = m.generate(**batch, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=8,
                             num_return_sequences=g, pad_token_id=tok.pad_token_id)
        else:  # greedy, repeated: the mistake the check must catch
            out = m.generate(**batch, do_sample=False, max_new_tokens=8, pad_token_id=tok.pad_token_id)
            out = out.repeat_interleave(g, dim=0)
        completions = tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        by_row = [r for r in rows_ for _ in range(g)] if answers_by_row else list(rows_) * g
        scores = torch.tensor(rewards.correctness_reward([r["prompt"] for r in by_row], completions,
                                                         [r["answer"] for r in by_row]))
        return completions, scores, preference.group_advantages(scores, g)

    lesson11.sample_and_score(sample, model, tokenizer, rows)
    fails(lesson11.sample_and_score, lambda *a: sample(*a, do_sample=False), model, tokenizer, rows, match="identical")
    fails(lesson11.sample_and_score, lambda *a: sample(*a)[:2], model, tokenizer, rows, match="returned tuple")


# ---------------------------------------------------------------- 07 peft compared
def test_ia3_and_prefix_parameters(model, tokenizer):
    layers, kv, inner = 2, 32, 64  # the tiny model: 2 blocks, hidden 32 (4 key-value heads of 8), MLP 64
    ia3, prefix = layers * (2 * kv + inner), 2 * 16 * layers * kv
    lesson07.ia3_and_prefix_parameters(ia3, prefix, model)
    fails(lesson07.ia3_and_prefix_parameters, layers * (2 * kv + 32), prefix, model, match="down_proj's output")
    fails(lesson07.ia3_and_prefix_parameters, ia3 // layers, prefix, model, match="one block")
    fails(lesson07.ia3_and_prefix_parameters, ia3 + 1, prefix, model, match="too many")
    fails(lesson07.ia3_and_prefix_parameters, ia3, 16 * 32, model, match="prompt tuning's size")
    fails(lesson07.ia3_and_prefix_parameters, ia3, prefix // 2, model, match="keys or the values")
    fails(lesson07.ia3_and_prefix_parameters, ia3, "many", model, match="should be a number")
    three = LlamaForCausalLM(LlamaConfig(**{**tiny_config(tokenizer).to_dict(), "num_hidden_layers": 3}))
    fails(lesson07.ia3_and_prefix_parameters, 3 * (2 * kv + inner), 2 * 16 * kv, three, match="one layer")


def settings_within(config, budget, houlsby=True, gqa=True, greedy=False):
    """Exercise 2's answer, and its usual mistakes."""
    from ftlab import memory

    shapes = memory.linear_shapes(config)
    if not gqa:
        shapes = [(config.hidden_size, i) if o < config.hidden_size and i == config.hidden_size else (o, i)
                  for o, i in shapes]
    per_rank = config.num_hidden_layers * sum(o + i for o, i in shapes)
    d, insertions = config.hidden_size, config.num_hidden_layers * (2 if houlsby else 1)
    return {"LoRA rank": budget // per_rank + greedy, "bottleneck": (budget // insertions - d) // (2 * d + 1),
            "virtual tokens": budget // d}


def test_equal_budget(model):
    lesson07.equal_budget(settings_within, model)
    fails(lesson07.equal_budget, lambda c, b: settings_within(c, b, gqa=False), model, match="grouped-query")
    fails(lesson07.equal_budget, lambda c, b: settings_within(c, b, houlsby=False), model, match="two insertions")
    fails(lesson07.equal_budget, lambda c, b: settings_within(c, b, greedy=True), model, match="over the budget")
    fails(lesson07.equal_budget, lambda c, b: {**settings_within(c, b), "virtual tokens": 1}, model,
          match="still within")
    fails(lesson07.equal_budget, lambda c, b: {"rank": 1}, model, match="keys")


@pytest.fixture(scope="module")
def dora_model(model):
    dora = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"],
                                                           use_dora=True))
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in dora.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
            elif "lora_magnitude_vector" in name:
                p.mul_(1 + 0.3 * torch.randn_like(p))
    return dora


def test_dora_merged_weight(dora_model, lora_model):
    q = dora_model.base_model.model.model.layers[0].self_attn.q_proj
    W, A, B, s = q.base_layer.weight, q.lora_A["default"].weight, q.lora_B["default"].weight, q.scaling["default"]
    m = q.lora_magnitude_vector["default"].weight[:, None]
    combined = W + s * B @ A
    lesson07.dora_merged_weight(m * combined / combined.norm(dim=1, keepdim=True), dora_model)
    fails(lesson07.dora_merged_weight, combined, dora_model, match="plain LoRA merge")
    fails(lesson07.dora_merged_weight, combined / combined.norm(dim=1, keepdim=True), dora_model, match="length 1")
    fails(lesson07.dora_merged_weight, m * combined / combined.norm(dim=0, keepdim=True), dora_model,
          match="columns")
    fails(lesson07.dora_merged_weight, m * combined / W.norm(dim=1, keepdim=True), dora_model,
          match="before the update")
    fails(lesson07.dora_merged_weight, m * (W + B @ A) / (W + B @ A).norm(dim=1, keepdim=True), dora_model,
          match="scale")
    fails(lesson07.dora_merged_weight, combined[:, :5], dora_model, match="shape")
    fails(lesson07.dora_merged_weight, W, lora_model, match="no DoRA magnitude")


# ---------------------------------------------------------------- 12 evaluate and export
def test_f16_tensor_bytes(model, tokenizer):
    state = model.state_dict()
    exported = {k: v for k, v in state.items() if k != "lm_head.weight"}
    matrices = sum(v.numel() for v in exported.values() if v.dim() > 1)
    vectors = sum(v.numel() for v in exported.values() if v.dim() == 1)
    right = 2 * matrices + 4 * vectors
    lesson12.f16_tensor_bytes(right, model, tokenizer)
    fails(lesson12.f16_tensor_bytes, matrices + vectors, model, tokenizer, match="parameters, not bytes")
    fails(lesson12.f16_tensor_bytes, 4 * (matrices + vectors), model, tokenizer, match="f32 file")
    fails(lesson12.f16_tensor_bytes, 2 * (matrices + vectors), model, tokenizer, match="norm weights")
    fails(lesson12.f16_tensor_bytes, right + 2 * state["lm_head.weight"].numel(), model, tokenizer, match="lm_head")
    fails(lesson12.f16_tensor_bytes, right - 2, model, tokenizer, match="too few")


def test_rope_permutation():
    from ftlab.gguf_export import rope_permute

    lesson12.rope_permutation(rope_permute)
    lesson12.rope_permutation(lambda w, n: torch.as_tensor(rope_permute(w, n)))  # a tensor is fine
    fails(lesson12.rope_permutation, lambda w, n: w, match="leaves the rows")
    fails(lesson12.rope_permutation, lambda w, n: rope_permute(w.T, n).T if w.shape[1] % (2 * n) == 0 else w,
          match="moves the columns")
    fails(lesson12.rope_permutation, lambda w, n: w.reshape(n, -1, 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape),
          match="inverse")
    fails(lesson12.rope_permutation, lambda w, n: rope_permute(w, n).reshape(n, -1, w.shape[1])[::-1].reshape(w.shape),
          match="attention scores")
    fails(lesson12.rope_permutation, lambda w, n: rope_permute(w, n)[:-1], match="shape")
    fails(lesson12.rope_permutation, lambda w, n: rope_permute(w, n).tolist(), match="returned list")


def quantize_q8_0(weight, divide=127, absolute=True, scale_dtype="float16", rounding="gguf", per_row=False,
                  safe=True):
    """Exercise 3's answer, and its usual mistakes."""
    import numpy as np

    blocks = weight.reshape(weight.shape[0], -1) if per_row else weight.reshape(-1, 32)
    top = np.abs(blocks).max(axis=1, keepdims=True) if absolute else blocks.max(axis=1, keepdims=True)
    scales = top / divide
    if safe:
        with np.errstate(divide="ignore"):
            inverse = np.where(scales == 0, 0, 1 / scales)
        scaled = blocks * inverse
    else:
        scaled = blocks / scales
    quants = {"gguf": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5), "numpy": np.round, "trunc": np.trunc}[rounding](
        scaled).astype(np.int8)
    return scales.astype(scale_dtype).ravel(), quants


def test_q8_0(model):
    weight = model.model.layers[0].mlp.down_proj.weight.detach().numpy()  # 32 x 64: two blocks a row
    lesson12.q8_0(quantize_q8_0, weight)
    lesson12.q8_0(lambda w: quantize_q8_0(w, rounding="numpy"), weight)  # ties to even: never a tie here
    fails(lesson12.q8_0, lambda w: quantize_q8_0(w, divide=128), weight, match="divide by 128")
    fails(lesson12.q8_0, lambda w: quantize_q8_0(w, absolute=False), weight, match="largest weight")
    fails(lesson12.q8_0, lambda w: quantize_q8_0(w, scale_dtype="float32"), weight, match="float16")
    fails(lesson12.q8_0, lambda w: quantize_q8_0(w, rounding="trunc"), weight, match="truncated")
    fails(lesson12.q8_0, lambda w: quantize_q8_0(w, per_row=True), weight, match="one scale per row")
    fails(lesson12.q8_0, lambda w: quantize_q8_0(w, safe=False), weight, match="divides by zero")
    fails(lesson12.q8_0, lambda w: quantize_q8_0(w)[1], weight, match="return \\(scales, quants\\)")


# ---------------------------------------------------------------- 13 scaling out
def alpaca_row(row, system_field="system", system_into_instruction=False):
    messages = row["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    user, reply = messages[-2]["content"], messages[-1]["content"]
    if system_into_instruction:
        return {"instruction": system, "input": user, "output": reply} if system else \
            {"instruction": user, "input": "", "output": reply}
    return {"instruction": user, "input": "", "output": reply, system_field: system}


def test_alpaca_rows():
    columns = {"prompt": "instruction", "query": "input", "response": "output", "system": "system"}
    lesson13.alpaca_rows(alpaca_row, columns)
    lesson13.alpaca_rows(lambda r: alpaca_row(r, "sys"), {"system": "sys"})  # the other columns keep their defaults
    fails(lesson13.alpaca_rows, alpaca_row, {}, match="no system prompt")
    fails(lesson13.alpaca_rows, lambda r: alpaca_row(r, "sys"), columns, match="reads the system prompt ''")
    fails(lesson13.alpaca_rows, lambda r: alpaca_row(r, system_into_instruction=True), columns,
          match="joins instruction and input")
    fails(lesson13.alpaca_rows, lambda r: {**alpaca_row(r), "output": None}, columns, match="reads your row as")
    fails(lesson13.alpaca_rows, alpaca_row, {**columns, "messages": "messages"}, match="does not read")
    fails(lesson13.alpaca_rows, alpaca_row, None, match="is NoneType")


def fewest_gpus(parameters, gpu_bytes, strategy, rounding=math.ceil, never=True):
    from ftlab import launch

    sharded = sum(b for p, b in launch.STATE_BYTES.items() if p in launch.SHARDS[strategy]) * parameters
    whole = sum(b for p, b in launch.STATE_BYTES.items() if p not in launch.SHARDS[strategy]) * parameters
    if whole + sharded <= gpu_bytes:
        return 1
    if whole >= gpu_bytes or not sharded:
        return None if never else 1024
    return rounding(sharded / (gpu_bytes - whole))


def test_fewest_gpus():
    lesson13.fewest_gpus(fewest_gpus)
    fails(lesson13.fewest_gpus, lambda *a: fewest_gpus(*a, never=False), match="no number of GPUs is enough")
    fails(lesson13.fewest_gpus, lambda *a: fewest_gpus(*a, rounding=math.floor), match="more than")
    fails(lesson13.fewest_gpus, lambda *a: fewest_gpus(*a, rounding=lambda x: math.ceil(x) + 1), match="enough already")
    fails(lesson13.fewest_gpus, lambda *a: str(fewest_gpus(*a)), match="expected a number of GPUs")


def test_rows_in_step():
    def right(order, per_device, processes, accumulation, rank, step):
        batches = [order[i:i + per_device] for i in range(0, len(order), per_device)]
        mine = batches[rank::processes]
        return [row for batch in mine[(step - 1) * accumulation:step * accumulation] for row in batch]

    def neighbours(order, per_device, processes, accumulation, rank, step):
        first = ((step - 1) * processes + rank) * accumulation * per_device
        return order[first:first + accumulation * per_device]

    lesson13.rows_in_step(right)
    lesson13.rows_in_step(lambda *a: tuple(right(*a)))  # any sequence
    fails(lesson13.rows_in_step, neighbours, match="neighbouring batches")
    fails(lesson13.rows_in_step, lambda o, b, n, acc, r, s: right(o, b, n, 1, r, s), match="rows, expected")
    fails(lesson13.rows_in_step, lambda o, b, n, acc, r, s: right(o, b, n, acc, r, s + 1), match="rows of step")
    fails(lesson13.rows_in_step, lambda *a: sorted(right(*a)), match="another order")
    fails(lesson13.rows_in_step, lambda o, b, n, acc, r, s: right(o, b, n, acc, (r + 1) % n, s), match="you say")
    fails(lesson13.rows_in_step, lambda *a: 5, match="returned int")


# ---------------------------------------------------------------- 14 your own data
def sharegpt_to_messages(row, roles=None, system=True):
    roles = roles or {"system": "system", "human": "user", "gpt": "assistant"}
    start = [{"role": "system", "content": row["system"]}] if system and row.get("system") else []
    return start + [{"role": roles[t["from"]], "content": t["value"]} for t in row["conversations"]]


def test_sharegpt_rows():
    lesson14.sharegpt_rows(sharegpt_to_messages)
    fails(lesson14.sharegpt_rows, lambda r: sharegpt_to_messages(r, roles={"system": "system", "human": "human",
                                                                             "gpt": "gpt"}), match="'human' is the")
    fails(lesson14.sharegpt_rows, lambda r: sharegpt_to_messages(r, system=False), match="has a `system` field")
    fails(lesson14.sharegpt_rows, lambda r: r["conversations"], match="keep ShareGPT's keys")
    fails(lesson14.sharegpt_rows, lambda r: sharegpt_to_messages(r)[::-1], match="expected")


def test_masked_rows(tokenizer):
    def fully_masked(conversations, tok, max_length):
        return [i for i, c in enumerate(conversations) if sum(chat.encode(tok, c)["completion_mask"][:max_length]) == 0]

    def too_long(conversations, tok, max_length):  # the length check, not the label check
        return [i for i, c in enumerate(conversations) if len(chat.encode(tok, c)["input_ids"]) > max_length]

    lesson14.masked_rows(fully_masked, tokenizer)
    fails(lesson14.masked_rows, too_long, tokenizer, match="longer than max_length")
    fails(lesson14.masked_rows, lambda c, t, m: [], tokenizer, match="you found")


def test_split_by_question():
    import random

    def by_question(conversations, share, seed, group=True):
        groups = {}
        for i, c in enumerate(conversations):
            groups.setdefault(lesson14.question_of(c) if group else i, []).append(c)
        keys = sorted(groups, key=str)
        random.Random(seed).shuffle(keys)
        train, test = [], []
        for k in keys:
            (test if len(test) < share * len(conversations) else train).extend(groups[k])
        return train, test

    lesson14.split_by_question(by_question)
    fails(lesson14.split_by_question, lambda c, s, seed: by_question(c, s, seed, group=False), match="on both sides")
    fails(lesson14.split_by_question, lambda c, s, seed: by_question(c, s, 0), match="same test set")
    fails(lesson14.split_by_question, lambda c, s, seed: by_question(c, 0.5, seed), match="in test")
    fails(lesson14.split_by_question, lambda c, s, seed: (by_question(c, s, seed)[0], []), match="hold")
