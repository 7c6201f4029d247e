"""Three workers and one submitter, all real processes, share one provider's rate limit.

Scaled time (see conftest): 200 ms latency -> 20 ms, 120 requests per 60 s -> 120 per 6 s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from imagegen.testing import serve

from .conftest import SCALE, ArrivalLog, cli_env, finish, imagegen, make_emulator, start_worker, write_config

PROMPTS = 300
LIMIT = 120
WINDOW_S = 60 * SCALE
GUARD_S = 0.15


def test_three_workers_stay_under_one_shared_limit_and_pay_each_prompt_once(tmp_path: Path, redis_url: str):
    emulator = make_emulator("gemini", latency_s=0.2 * SCALE)
    arrivals = ArrivalLog(emulator.app, ":generateContent")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"a lighthouse at dusk, take {i}"}) + "\n"
                               for i in range(PROMPTS)))
    prefix = f"t{time.time_ns()}:"
    with serve(arrivals) as server:
        config = write_config(tmp_path, {"gemini": server.base_url},
                              fleet={"key_prefix": prefix, "rate_window_s": WINDOW_S, "rate_guard_s": GUARD_S,
                                     # a worker's first call (SDK import) may take seconds on a loaded CI box
                                     "rate_send_bound_s": 30.0,
                                     "visibility_timeout_s": 5.0},
                              provider_extra={"gemini": f"requests_per_minute = {LIMIT}\n"})
        env = cli_env(tmp_path)
        out = tmp_path / "shared-out"
        submitted = imagegen("batch", str(prompts), "--fleet", redis_url, "--out", str(out), "--config",
                             str(config), env=env)
        assert submitted["total"] == PROMPTS
        workers = [start_worker(config, redis_url, f"w{i}", env, concurrency=8) for i in range(3)]
        processed = [finish(w)["processed"] for w in workers]
        status = imagegen("batch", "status", submitted["batch_id"], "--fleet", redis_url, "--config", str(config),
                          env=env)

    # Every prompt ran once, and the vendor billed each exactly once.
    assert sum(processed) == PROMPTS and all(processed)  # all three workers took part
    refs = [c["ref"] for c in emulator.counters.charges]
    assert len(refs) == len(set(refs)) == PROMPTS
    assert status["state"] == "done" and status["succeeded"] == PROMPTS and status["failed"] == 0
    assert status["usd"] == round(emulator.counters.total_usd, 9)
    assert status["providers"]["gemini"]["done"] == PROMPTS
    # The vendor never saw more than the limit in any window (counted where requests arrived).
    assert arrivals.most_in_any_window(WINDOW_S) <= LIMIT
    # ...and the fleet used what the limit allows: 300 at 120 per window is two full windows
    # after the first burst (plus the guard per window, and the time the 2-core CI machine takes to
    # push 120 requests through: about 1.5 s here), not much more.
    span = max(arrivals.arrivals) - min(arrivals.arrivals)
    assert 2 * WINDOW_S <= span <= 2 * (WINDOW_S + GUARD_S) + 4.0, span
    # The results file is assembled from all three workers' outcomes, in prompt order.
    lines = [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(PROMPTS))
    assert {line["worker"] for line in lines} == {"w0", "w1", "w2"}
    assert all(Path(line["images"][0]["path"]).stat().st_size > 0 for line in lines)
