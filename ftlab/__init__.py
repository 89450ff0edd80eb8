"""ftlab: helpers for the fine-tuning course.

Start every lesson with `P = ftlab.setup()`, before importing transformers or trl.
The modules, by lesson:
- everywhere: profiles (cpu/gpu settings and shared trainer settings), network_guard (make test's proof that the
  offline profiles stay offline), paths (where things live, atomic writes),
  cache (models saved with their recipe), environment (the pins), world and data (the course datasets),
  chat and base_eval (measuring chat and base models), stats (how sure a measured accuracy is), parameters (the
  one parameter count), plots, show;
- the classroom: classroom (lesson headers: Colab badge and install cell, bilingual titles, the repository's
  address), exercises (the exercises' checks, one module per lesson);
- 01 tokenizer, base_model; 02 sft; 03 lora; 04 memory, architectures (real model configs), peak_memory (the
  memory a training run adds, 04 and 07);
- 05-07 adapters, peft_train, soft_prompts; 08-11 preference, rewards, ppo, rl_start (GRPO's start model);
- 12 leaderboard (every checkpoint scored alike), gguf_export (GGUF files for llama.cpp);
- 13 launch (training as a script from a run config, on as many processes as a launcher starts), llamafactory
  (the course datasets in LLaMA-Factory's formats);
- 14 own_data (a dataset of yours: its format, the checks before training, deduplication, splits) and finetune
  (`ftlab finetune`, the lesson's path as a command).
"""
from .profiles import Profile, Stage, get_profile, setup

__all__ = ["Profile", "Stage", "get_profile", "setup"]
