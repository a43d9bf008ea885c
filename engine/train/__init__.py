"""Fine-tuning runs: full, LoRA and QLoRA on transformers' Trainer with peft.

`spec.TrainSpec` describes a run (JSON-able, saved with the run, editable, re-runnable, with its
equivalent `llmdeck train ...` command); `job.run` is the detached job, which trains here with
`runner.train` or relaunches it under `accelerate launch` with `multi_gpu`; `callbacks` streams
metrics into the run's events; `checkpoints` lists and picks checkpoints to resume from;
`launch` starts and resumes training runs; `plots` exports curves.
Nothing here imports torch, transformers or peft at module level.
"""
