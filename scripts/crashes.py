"""Crashes: a mixed workload while ``rulestream api`` and both workers are SIGKILLed and restarted at random.

    .venv/bin/python scripts/crashes.py                   # 60 s of chaos on a fresh database
    .venv/bin/python scripts/crashes.py --seconds 300 --writers 16 --seed 7

Afterwards, with every process running again and caught up, it checks:
- every acknowledged write is in the log (sessions in the state they were acknowledged in, or later; tracked
  events at the log position their answer named);
- no event was evaluated twice, and the recorded effects are exactly what ``projections.replay.Replay`` computes
  from the log (none missing, none extra);
- every read model equals a fresh rebuild (``rulestream projections rebuild NAME``), row for row.
Exit status 0 when all hold; a JSON summary on stdout. Uses the machine's PostgreSQL (a fresh database).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.conftest import (  # noqa: E402
    INTEGRATION_KEY,
    MANAGEMENT_KEY,
    drop_database,
    free_port,
    fresh_database,
)

INTEGRATION = {"Authorization": f"ApiKey-v1 {INTEGRATION_KEY}"}
MANAGEMENT = {"Authorization": f"ManagementKey-v1 {MANAGEMENT_KEY}"}
RULES = [
    {"name": "points per purchase", "trigger": ["purchase"],
     "effects": [{"effectType": "addLoyaltyPoints",
                  "props": {"name": "p", "value": {"attr": "event.attributes.amount"}}}]},
    {"name": "every third purchase", "trigger": ["purchase"], "limits": {"everyNth": 3},
     "effects": [{"effectType": "showNotification",
                  "props": {"notificationType": "Offer", "title": "3rd!", "body": "thanks"}}]},
    {"name": "loyal closers", "trigger": ["talon_session_closed"],
     "condition": {"history": {"type": "purchase", "measure": "sum:amount"}, "op": "gte", "value": 10},
     "effects": [{"effectType": "setDiscount", "props": {"name": "loyal", "value": 5}}]},
]  # fmt: skip


class Processes:
    """``rulestream api`` on a fixed port and the two worker groups, each killable and restartable."""

    COMMANDS = {"api": ["api"], "policy": ["worker", "policy"], "projections": ["worker", "projections"]}

    def __init__(self, env: dict[str, str], port: int, logs: Path) -> None:
        self.env, self.port, self.logs = env, port, logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: Counter[str] = Counter()

    def start(self, name: str) -> None:
        extra = ["--port", str(self.port)] if name == "api" else []
        with (self.logs / f"{name}.log").open("ab") as out:
            self.running[name] = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *self.COMMANDS[name], *extra], env=self.env, stdout=out, stderr=out
            )

    def kill(self, name: str) -> None:
        process = self.running[name]
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.kills[name] += 1

    def stop_all(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def wait_healthy(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not come up")


class Acknowledged:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: dict[str, str] = {}  # session id → the state the last acknowledged write left it in
        self.events: dict[int, str] = {}  # log position of an acknowledged custom event → its profile
        self.attempts = Counter[str]()


def workload(url: str, stop: threading.Event, acked: Acknowledged, rng: random.Random) -> None:
    with httpx.Client(timeout=15) as client:
        while not stop.is_set():
            profile, sid = f"c-{rng.randrange(30)}", f"s-{uuid.uuid4().hex[:12]}"
            try:
                for state in ("open", "closed"):
                    acked.attempts["session"] += 1
                    body = {"customerSession": {"profileId": profile, "state": state,
                                                "cartItems": [{"sku": "a", "price": 10, "quantity": 1}]}}  # fmt: skip
                    if client.put(f"{url}/v2/customer_sessions/{sid}", json=body, headers=INTEGRATION).status_code != 200:
                        break
                    with acked.lock:
                        acked.sessions[sid] = state
                acked.attempts["event"] += 1
                answer = client.post(f"{url}/v2/events", headers=INTEGRATION, json={
                    "profileId": profile, "type": "purchase", "attributes": {"amount": rng.randint(1, 9)},
                    "responseContent": ["event"]})  # fmt: skip
                if answer.status_code == 200:
                    with acked.lock:
                        acked.events[int(answer.json()["event"]["id"])] = profile
            except httpx.HTTPError:
                time.sleep(0.2)  # the API is down (killed): come back


def chaos(processes: Processes, url: str, stop: threading.Event, rng: random.Random) -> None:
    while not stop.wait(rng.uniform(0.5, 3.0)):
        name = rng.choice(list(Processes.COMMANDS))
        processes.kill(name)
        time.sleep(rng.uniform(0, 1.0))
        processes.start(name)
        if name == "api":
            wait_healthy(url)


def caught_up(url: str, seconds: float = 180) -> None:
    """Read models at the head, and the head still (the policy records nothing more), twice in a row."""
    deadline, stable = time.monotonic() + seconds, 0
    last = None
    while time.monotonic() < deadline:
        rows = httpx.get(f"{url}/v1/projections", headers=MANAGEMENT, timeout=30).json()["data"]
        heads = {r["head"] for r in rows}
        if all(r["lagEvents"] == 0 for r in rows) and len(heads) == 1 and heads == last:
            stable += 1
            if stable >= 2:
                return
        else:
            stable = 0
        last = heads
        time.sleep(1.5)
    raise RuntimeError(f"not caught up: {rows}")


def check_log(app: Any, acked: Acknowledged, url: str) -> dict[str, Any]:
    missing_sessions, wrong_state = [], []
    order = {"open": 0, "closed": 1}
    with httpx.Client(timeout=30) as client:
        for sid, state in acked.sessions.items():
            answer = client.get(f"{url}/v2/customer_sessions/{sid}", headers=INTEGRATION)
            if answer.status_code != 200:
                missing_sessions.append(sid)
            elif order.get(answer.json()["customerSession"]["state"], 9) < order[state]:
                wrong_state.append(sid)
    missing_events = []
    for position in acked.events:
        found = app.recorder.select_notifications(start=position, limit=1)
        event = app.mapper.to_domain_event(found[0]) if found and found[0].id == position else None
        if event is None or getattr(event, "event_type", None) != "purchase":
            missing_events.append(position)
    return {"acknowledgedSessions": len(acked.sessions), "acknowledgedEvents": len(acked.events),
            "missingSessions": len(missing_sessions), "sessionsInAnEarlierState": len(wrong_state),
            "missingEvents": len(missing_events)}  # fmt: skip


def check_effects(app: Any) -> dict[str, Any]:
    from domain.effects import Evaluation
    from projections.replay import Replay

    recorded: dict[tuple[str, int], list[Any]] = {}
    evaluated = Counter[tuple[str, int]]()
    start = 0
    while page := app.recorder.select_notifications(start=start, limit=1000, inclusive_of_start=False):
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            if isinstance(event, Evaluation.Evaluated):
                cause = (str(event.cause["originatorId"]), int(event.cause["originatorVersion"]))
                evaluated[cause] += 1
                if event.effects:
                    recorded[cause] = event.effects
        start = page[-1].id
    replayed = {(str(r.originator_id), r.originator_version): _plain(r.result.effects)
                for r in Replay(app).run() if r.result.effects}  # fmt: skip
    return {
        "evaluations": sum(evaluated.values()),
        "evaluatedTwice": sum(1 for n in evaluated.values() if n > 1),
        "withEffects": len(recorded),
        "replayedWithEffects": len(replayed),
        "missingEffects": len(set(replayed) - set(recorded)),
        "extraEffects": len(set(recorded) - set(replayed)),
        "differentEffects": sum(1 for k in set(recorded) & set(replayed) if recorded[k] != replayed[k]),
    }


def _plain(effects: Any) -> Any:
    from domain.effects import plain  # how the policy stores them

    return plain(effects)


def dump_read_models(database_url: str) -> dict[str, list[str]]:
    import psycopg

    from projections.registry import READ_MODELS

    dumps: dict[str, list[str]] = {}
    with psycopg.connect(database_url) as conn:
        for name, model in READ_MODELS.items():
            for table in model.tables:
                rows = conn.execute(f'SELECT to_jsonb(t)::text FROM "{table.view}" t').fetchall()
                dumps[f"{name}.{table.view}"] = sorted(r[0] for r in rows)
    return dumps


def check_read_models(env: dict[str, str], database_url: str) -> dict[str, Any]:
    from projections.registry import READ_MODELS

    live = dump_read_models(database_url)
    for name in READ_MODELS:
        subprocess.run([sys.executable, "-m", "api.cli", "projections", "rebuild", name], env=env, check=True,
                       capture_output=True)  # fmt: skip
    rebuilt = dump_read_models(database_url)
    differ = {k: {"live": len(live[k]), "rebuilt": len(rebuilt.get(k, []))}
              for k in live if live[k] != rebuilt.get(k)}  # fmt: skip
    return {"rows": {k: len(v) for k, v in live.items()}, "differFromRebuild": differ}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1122)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    database_url = fresh_database("rulestream_crashes")
    env = {**os.environ, "DATABASE_URL": database_url, "RULESTREAM_INTEGRATION_KEY": INTEGRATION_KEY,
           "RULESTREAM_MANAGEMENT_KEY": MANAGEMENT_KEY, "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="rulestream-crashes-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes = Processes(env, port, logs)
    summary: dict[str, Any] = {"logs": str(logs)}
    try:
        processes.start("api")
        wait_healthy(url)
        processes.start("policy")
        processes.start("projections")
        httpx.post(f"{url}/v1/attributes", headers=MANAGEMENT, json={
            "entity": "Event", "eventType": "purchase", "name": "amount", "title": "amount", "type": "number",
            "description": "", "suggestions": [], "editable": True}).raise_for_status()  # fmt: skip
        for rule in RULES:
            httpx.post(f"{url}/v1/rules", json=rule, headers=MANAGEMENT).raise_for_status()

        acked, stop = Acknowledged(), threading.Event()
        threads = [threading.Thread(target=workload, args=(url, stop, acked, random.Random(rng.random())))
                   for _ in range(args.writers)]  # fmt: skip
        killer = threading.Thread(target=chaos, args=(processes, url, stop, random.Random(rng.random())))
        for t in [*threads, killer]:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in [*threads, killer]:
            t.join()
        summary["kills"] = dict(processes.kills)
        summary["attempts"] = dict(acked.attempts)
        caught_up(url)

        from api.bootstrap import open_application
        from api.settings import Settings

        app = open_application(Settings(database_url=database_url))
        summary["log"] = check_log(app, acked, url)
        summary["effects"] = check_effects(app)
        processes.stop_all()  # frozen: the rebuilds see the same log the live models saw
        summary["readModels"] = check_read_models(env, database_url)
    finally:
        processes.stop_all()
        if not args.keep:
            drop_database(database_url)
    log, effects = summary.get("log", {}), summary.get("effects", {})
    problems = [k for k in ("missingSessions", "sessionsInAnEarlierState", "missingEvents") if log.get(k)]
    problems += [k for k in ("evaluatedTwice", "missingEffects", "extraEffects", "differentEffects") if effects.get(k)]
    if summary.get("readModels", {}).get("differFromRebuild"):
        problems.append("read models differ from a rebuild")
    summary["problems"] = problems
    print(json.dumps(summary, indent=2))  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
