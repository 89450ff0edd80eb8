"""Checks for exercises/13_scaling_out: a course chat in LLaMA-Factory's alpaca format, the fewest GPUs a full
fine-tune needs, the rows each process trains on in a step."""
import math

import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler

from .. import data, launch, memory
from ..architectures import real_config
from . import expect, fail, passed

# ---------------------------------------------------------------- exercise 1
# LLaMA-Factory's alpaca columns when the registry names none (llamafactory/data/parser.py, DatasetAttr): no
# system column unless the registry's "columns" names one.
ALPACA_DEFAULTS = {"prompt": "instruction", "query": "input", "response": "output", "system": None, "history": None}


def alpaca_as_llamafactory_reads_it(row, columns):
    """(system, turns) as LLaMA-Factory 0.9.5 reads an alpaca row (llamafactory/data/converter.py,
    AlpacaDatasetConverter): history pairs, then "prompt\\nquery" as the user's turn, the response as the reply."""
    attr = ALPACA_DEFAULTS | columns
    turns = []
    if attr["history"] and isinstance(row.get(attr["history"]), list):
        for old_prompt, old_response in row[attr["history"]]:
            turns += [("user", old_prompt), ("assistant", old_response)]
    query = [row[attr[key]] for key in ("prompt", "query") if attr[key] and row.get(attr[key])]
    turns.append(("user", "\n".join(query)))
    if attr["response"] and isinstance(row.get(attr["response"]), str):
        turns.append(("assistant", row[attr["response"]]))
    return (row.get(attr["system"]) if attr["system"] else "") or "", turns


def chat_as_llamafactory_reads_it(row):
    """(system, turns) of a course chat as LLaMA-Factory reads its sharegpt export (SharegptDatasetConverter): a
    first system turn is the system prompt."""
    messages = row["messages"]
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    return system, [(m["role"], m["content"]) for m in messages if m["role"] != "system"]


def alpaca_rows(alpaca_fn, columns):
    """Exercise 1: `alpaca_fn(row)` turns a course chat into an alpaca row that LLaMA-Factory, with the registry
    columns `columns`, reads as the same conversation, system prompt included."""
    expect(isinstance(columns, dict), f"`alpaca_columns` is {type(columns).__name__}",
           'a dict like the registry\'s "columns": {"prompt": "instruction", ...}')
    unknown = set(columns) - set(ALPACA_DEFAULTS)
    expect(not unknown, f"`alpaca_columns` has keys LLaMA-Factory does not read for alpaca rows: {sorted(unknown)}",
           f"its keys are LLaMA-Factory's names ({', '.join(ALPACA_DEFAULTS)}), its values your row's field names")
    rows = data.read("sft", "train")
    for n, row in enumerate(rows, start=1):
        got = alpaca_fn(row)
        expect(isinstance(got, dict), f"row {n}: alpaca_fn returned {type(got).__name__}", "return a dict")
        expected = chat_as_llamafactory_reads_it(row)
        read = alpaca_as_llamafactory_reads_it(got, columns)
        if read == expected:
            continue
        where = f"data/sft_train.jsonl, row {n}"
        if read[1] == expected[1] and expected[0]:
            if not (ALPACA_DEFAULTS | columns)["system"]:
                fail(f"{where}: LLaMA-Factory reads no system prompt from your rows",
                     'alpaca has no system column unless the registry names one: add "system": "system" to '
                     "alpaca_columns")
            fail(f"{where}: LLaMA-Factory reads the system prompt {read[0]!r:.60}, expected {expected[0]!r:.60}",
                 "put the system turn's content in the field your columns name for \"system\"")
        if len(read[1]) == len(expected[1]) and read[1][0][1].endswith("\n" + expected[1][0][1]):
            fail(f"{where}: LLaMA-Factory reads the user's turn as {read[1][0][1]!r:.80}",
                 "it joins instruction and input with a newline: put the question in one of them, leave the other "
                 "empty; the system prompt has its own column")
        fail(f"{where}: LLaMA-Factory reads your row as {read[1]!r:.120}, expected {expected[1]!r:.120}",
             'instruction: the user\'s turn, input: "", output: the assistant\'s turn, system: the system turn or ""')
    with_system = sum(r["messages"][0]["role"] == "system" for r in rows)
    passed(f"all {len(rows):,} chats read back the same in alpaca form, the {with_system:,} system prompts included")


# ---------------------------------------------------------------- exercise 2
def _fewest(parameters, gpu_bytes, strategy):
    """The fewest GPUs whose share of the model state fits in `gpu_bytes`, from what the strategy shards."""
    whole = sum(b for part, b in launch.STATE_BYTES.items() if part not in launch.SHARDS[strategy]) * parameters
    sharded = sum(b for part, b in launch.STATE_BYTES.items() if part in launch.SHARDS[strategy]) * parameters
    if whole + sharded <= gpu_bytes:
        return 1
    if whole >= gpu_bytes or not sharded:
        return None
    n = math.ceil(sharded / (gpu_bytes - whole))
    while n > 1 and launch.model_state_per_gpu(parameters, n - 1, strategy) <= gpu_bytes:  # float rounding
        n -= 1
    while launch.model_state_per_gpu(parameters, n, strategy) > gpu_bytes:
        n += 1
    return n


GPU_SIZES = {"80 GB": 80e9, "24 GB": 24e9}
MODELS = ["Qwen2.5-0.5B", "Qwen2.5-7B", "Llama-3.1-70B"]


def fewest_gpus(fewest_fn):
    """Exercise 2: `fewest_fn(parameters, gpu_bytes, strategy)` is the fewest GPUs on which the weights, gradients
    and AdamW state of a full fine-tune fit under `strategy` (a key of launch.SHARDS), or None if no number does."""
    table = []
    for model in MODELS:
        parameters = memory.parameter_count(real_config(model))["total"]
        for gpu, gpu_bytes in GPU_SIZES.items():
            for strategy in launch.SHARDS:
                got, expected = fewest_fn(parameters, gpu_bytes, strategy), _fewest(parameters, gpu_bytes, strategy)
                table.append((model, gpu, strategy, expected))
                if got == expected:
                    continue
                case = f"{model} ({parameters / 1e9:.1f}B parameters) on {gpu} GPUs with {strategy}"
                if expected is None:
                    whole = [p for p in launch.STATE_BYTES if p not in launch.SHARDS[strategy]]
                    fail(f"{case}: you say {got!r}, but no number of GPUs is enough",
                         f"{strategy} keeps the {' and '.join(whole)} whole on every GPU: "
                         f"{sum(launch.STATE_BYTES[p] for p in whole) * parameters / 1e9:.0f} GB; return None")
                expect(isinstance(got, int) and not isinstance(got, bool),
                       f"{case}: you say {got!r}, expected a number of GPUs", "return an int (or None)")
                per_gpu = launch.model_state_per_gpu(parameters, got, strategy) / 1e9
                expect(got > expected, f"{case}: on {got} GPUs each holds {per_gpu:.1f} GB, more than {gpu}",
                       f"per GPU: the sharded parts ({', '.join(launch.SHARDS[strategy])}) divided by the number of "
                       "GPUs, plus the rest whole; 2 + 2 + 12 bytes per parameter")
                fail(f"{case}: {expected} GPUs are enough already "
                     f"({launch.model_state_per_gpu(parameters, expected, strategy) / 1e9:.1f} GB each)",
                     "the fewest: the smallest number whose share fits (round up, not more)")
    shown = [f"{s} {'never' if n is None else n}" for m, g, s, n in table if m == "Llama-3.1-70B" and g == "80 GB"]
    passed("Llama-3.1-70B on 80 GB GPUs: " + ", ".join(shown) + ". Only when the weights are sharded too do more "
           "GPUs make room for any model")


# ---------------------------------------------------------------- exercise 3
def _reference_rows(order, per_device, processes, accumulation, rank, step):
    """The rows process `rank` trains on in optimizer step `step` (from 1), as accelerate shards the Trainer's
    batches: one batch sampler over the shuffled order, cut by accelerate's own BatchSamplerShard."""
    batches = BatchSampler(order, batch_size=per_device, drop_last=False)
    mine = list(BatchSamplerShard(batches, num_processes=processes, process_index=rank))
    return [row for batch in mine[(step - 1) * accumulation:step * accumulation] for row in batch]


CASES = [(4, 2, 2), (8, 2, 1), (2, 4, 2), (4, 3, 1), (1, 2, 4)]  # (per-process batch, processes, accumulation)


def rows_in_step(rows_fn):
    """Exercise 3: `rows_fn(order, per_device, processes, accumulation, rank, step)` lists the rows process `rank`
    trains on in optimizer step `step` (from 1), in the order it sees them."""
    order = torch.randperm(2000, generator=torch.Generator().manual_seed(0)).tolist()
    for per_device, processes, accumulation in CASES:
        for step in (1, 3):
            covered = []
            for rank in range(processes):
                got = rows_fn(list(order), per_device, processes, accumulation, rank, step)
                expected = _reference_rows(order, per_device, processes, accumulation, rank, step)
                covered += expected
                if isinstance(got, (tuple, torch.Tensor)):
                    got = list(got.tolist() if isinstance(got, torch.Tensor) else got)
                if got == expected:
                    continue
                case = (f"per_device={per_device}, processes={processes}, accumulation={accumulation}: "
                        f"process {rank}, step {step}")
                expect(isinstance(got, list), f"{case}: you returned {type(got).__name__}", "return a list of rows")
                expect(len(got) == per_device * accumulation, f"{case}: {len(got)} rows, expected "
                       f"{per_device * accumulation}", "each process trains `accumulation` batches of `per_device` "
                       "rows in every optimizer step")
                contiguous = [order[i] for b in range(accumulation) for i in range(
                    ((step - 1) * processes * accumulation + rank * accumulation + b) * per_device,
                    ((step - 1) * processes * accumulation + rank * accumulation + b + 1) * per_device)]
                if got == contiguous and accumulation > 1:
                    fail(f"{case}: you give process {rank} neighbouring batches", "the batches go round the "
                         "processes one at a time: process r takes batches r, r + N, r + 2N, ... and its first "
                         "`accumulation` of them make its first step")
                if sorted(got) == sorted(expected):
                    fail(f"{case}: the right rows, in another order", "keep the shuffled order: batch by batch")
                if got == _reference_rows(order, per_device, processes, accumulation, rank, step + 1):
                    fail(f"{case}: you gave the rows of step {step + 1}", "steps count from 1, as the Trainer's do")
                fail(f"{case}: you say {got[:8]}{' ...' if len(got) > 8 else ''}, expected "
                     f"{expected[:8]}{' ...' if len(expected) > 8 else ''}",
                     "cut `order` into batches of per_device rows; process r takes batches r, r + N, r + 2N, ...; "
                     "step s is its batches (s - 1) * accumulation to s * accumulation - 1")
            global_batch = per_device * processes * accumulation
            start = (step - 1) * global_batch
            assert sorted(covered) == sorted(order[start:start + global_batch])  # the premise of the lesson
    passed("every case matches accelerate's BatchSamplerShard; in each step the processes together train exactly "
           "the global batch one process would, whatever the split into processes and accumulation steps")
