"""Serving: an OpenAI-compatible HTTP API over the chat backends, a vLLM launcher, the TUI in a browser.

Importing this package is light; FastAPI, uvicorn and the model libraries load only when a
server is built (`engine.serve.app.create_app`) or started (`engine.serve.server.run`).
"""
