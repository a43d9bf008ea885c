"""Evaluate and benchmark models: perplexity, speed, and the quantization sweep.

Each concept is one module (`perplexity`, `throughput`, `sweep`), every evaluation is also a job
(`jobs`) so it runs detached with progress, and `results` reads finished runs back as one
comparable table. Importing this package is light: llama_cpp, torch and transformers are
imported only inside the functions that load a model.
"""
