"""llmdeck's UI-free core.

Nothing here is imported eagerly: every heavy dependency (torch, transformers, llama_cpp,
pynvml) is imported inside the function that needs it, so that `import engine` stays cheap
and never touches textual.
"""

__version__ = "0.1.0"
