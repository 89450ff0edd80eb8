"""Plots the lessons share: loss curves and the picture of the four training stages."""
import matplotlib.pyplot as plt
from matplotlib.ticker import FormatStrFormatter


def loss_curves(log_history):
    """(train steps, train losses, eval steps, eval losses) from a Trainer's `state.log_history`."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    return [s for s, _ in train], [v for _, v in train], [s for s, _ in evals], [v for _, v in evals]


def plot_losses(log_history, title="loss", ax=None):
    """Training and held-out loss against the step, on a log scale (losses fall by orders of magnitude)."""
    train_steps, train_loss, eval_steps, eval_loss = loss_curves(log_history)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    ax.plot(train_steps, train_loss, label="training loss", alpha=0.8)
    ax.plot(eval_steps, eval_loss, "o-", label="held-out loss")
    ax.set(xlabel="step", ylabel="cross-entropy (nats per token)", yscale="log", title=title)
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(FormatStrFormatter("%.1f"))  # plain numbers, not powers of ten
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


STAGES = [
    ("1. Pretraining", "raw text\nnext-token loss", "lesson 01"),
    ("2. Supervised\nfine-tuning (SFT)", "conversations\nloss on the answers", "lessons 02-07"),
    ("3. Reward\nmodeling", "preference pairs\nBradley-Terry loss", "lesson 08"),
    ("4. Reinforcement\nlearning", "prompts + rewards\nPPO, DPO, GRPO", "lessons 09-11"),
]


def draw_pipeline():
    """The four training stages a chat model goes through, with the data each one learns from."""
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.set(xlim=(0, 11), ylim=(0, 3.6))
    ax.axis("off")
    for i, (stage, data, lessons) in enumerate(STAGES):
        x = 0.3 + i * 2.75
        ax.add_patch(plt.Rectangle((x, 1.7), 2.2, 1.3, facecolor=f"C{i}", alpha=0.25, edgecolor=f"C{i}"))
        ax.text(x + 1.1, 2.35, stage, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + 1.1, 1.25, data, ha="center", va="center", fontsize=9)
        ax.text(x + 1.1, 0.75, lessons, ha="center", va="center", fontsize=9, style="italic")
        if i < len(STAGES) - 1:
            ax.annotate("", xy=(x + 2.7, 2.35), xytext=(x + 2.2, 2.35), arrowprops={"arrowstyle": "->", "lw": 2})
    ax.text(5.5, 0.2, "PEFT (LoRA, QLoRA, adapters, prompt tuning) trains a small part of the model in any stage "
            "after pretraining", ha="center", fontsize=9.5, bbox={"boxstyle": "round", "fc": "lightyellow"})
    ax.text(5.5, 3.35, "base model  →  instruction model  →  aligned chat model", ha="center", fontsize=10)
    return fig
