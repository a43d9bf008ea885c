"""Fine-tuning runs: full, LoRA and QLoRA on transformers' Trainer with peft.

`spec.TrainSpec` describes a run (JSON-able, saved with the run, editable, re-runnable, with its
equivalent `llmdeck train ...` command); `runner.run` is the detached job; `callbacks` streams
metrics into the run's events; `checkpoints` lists and picks checkpoints to resume from;
`multi_gpu` relaunches the training under `accelerate launch`; `plots` exports curves.
Nothing here imports torch, transformers or peft at module level.
"""
