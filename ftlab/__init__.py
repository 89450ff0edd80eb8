"""ftlab: helpers for the fine-tuning course.

Start every lesson with `P = ftlab.setup()`, before importing transformers or trl.
The modules: profiles (cpu/gpu settings), world and data (the course datasets), tokenizer and base_model
(lesson 01's model), evaluate (measuring), plots, paths (where things live, atomic writes).
"""
from .profiles import Profile, Stage, get_profile, setup

__all__ = ["Profile", "Stage", "get_profile", "setup"]
