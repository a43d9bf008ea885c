"""Dataset preparation: load, detect the format, validate, render through the chat template,
mask the loss, measure lengths, cut or pack to `max_seq_len`.

The training area uses `engine.data.dataset` (`DataSpec`, `prepare`, `PreparedData.examples()`,
`make_collator`); Data mode and `llmdeck data inspect` use `engine.data.job.scan_job`.
Nothing here imports torch or transformers at module level.
"""

from engine.data.problems import DataError, Location, Problem, RecordProblem

__all__ = ["DataError", "Location", "Problem", "RecordProblem"]
