"""Load-test the service against its anchors on loopback -> docs/performance.md.

In one run this starts, side by side, each on 1 worker process (BLAS/OpenMP threads 1):

* ``floor``: bench/floor_app.py, granian + uvloop answering a fixed JSON body (the server's
  own cost per request: the most any app on it can do);
* ``service-granian``: ``python -m serving`` (Litestar + msgspec + ONNX Runtime on granian),
  access control off; loaded on ``/predict`` and on its OIP route;
* ``service-guarded``: the same service with API-key auth, a rate limit (far above the
  load) and decision records on, as ``make bench-auth`` starts it;
* ``service-guarded-redis`` and ``service-guarded-feedback``: the guarded service with its
  rate limits in a private ``redis-server``, without and with ``DIGITS_FEEDBACK=on`` (every
  decision indexed in that Redis): what feedback costs a prediction;
* ``service-uvicorn``: the same app on uvicorn (to choose the server by measurement);
* ``baseline``: bench/baseline_fastapi.py (FastAPI + pydantic + sklearn on uvicorn);
* ``mlserver-pw0`` and ``mlserver-pw1``: MLServer serving models/model.joblib with its
  scikit-learn runtime over the Open Inference Protocol (bench/mlserver_anchor.py), with
  ``parallel_workers`` 0 and 1;

checks that MLServer and the service answer the same labels, then drives every cell
(target, request, pixels, rows) with wrk in interleaved rounds, bounded in time. It also
records start-to-ready time and worker RSS.

Run: ``make bench`` (or ``python -m bench.serving_benchmark --duration 10 --rounds 3``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.bodies import MLSERVER_OUTPUTS, Pixels, oip_body, predict_body
from bench.cells import CELLS, GUARDED_FEEDBACK, GUARDED_REDIS, KEYED, MLSERVERS, Cell
from bench.cpus import NO_SPLIT, CpuSplit, split_cpus
from bench.load import LoadResult, connections_for, median_load, run_wrk
from bench.mlserver_anchor import mlserver, mlserver_labels, service_labels
from bench.redis_server import RedisServer
from bench.targets import (
    GUARDED_SCOPES,
    REPO_ROOT,
    Server,
    Target,
    decision_records,
    floor,
    guarded_env,
    service,
    start,
    stop,
    uvicorn,
    worker_rss_mb,
)


def build_targets(work: Path, key_file: Path, redis_url: str) -> list[Target]:
    guarded = guarded_env(work, key_file)
    shared = guarded | {"DIGITS_RATE_LIMIT_REDIS_URL": redis_url}
    return [
        floor("floor", report.DESCRIPTIONS["floor"], work),
        service("service-granian", report.DESCRIPTIONS["service-granian"], work, {}),
        service(
            "service-guarded",
            report.DESCRIPTIONS["service-guarded"],
            work,
            guarded,
        ),
        service(GUARDED_REDIS, report.DESCRIPTIONS[GUARDED_REDIS], work, shared),
        service(
            GUARDED_FEEDBACK,
            report.DESCRIPTIONS[GUARDED_FEEDBACK],
            work,
            shared | {"DIGITS_FEEDBACK": "on"},
        ),
        uvicorn(
            "service-uvicorn",
            report.DESCRIPTIONS["service-uvicorn"],
            "serving.app:app_from_env",
            work,
            factory=True,
        ),
        uvicorn("baseline", report.DESCRIPTIONS["baseline"], "bench.baseline_fastapi:app", work),
        mlserver("mlserver-pw0", report.DESCRIPTIONS["mlserver-pw0"], work, parallel_workers=0),
        mlserver("mlserver-pw1", report.DESCRIPTIONS["mlserver-pw1"], work, parallel_workers=1),
    ]


def label_agreement(servers: dict[str, Server]) -> dict[str, tuple[int, int]]:
    """Rows on which each MLServer answers the service's label: (agreeing, compared)."""
    bodies: list[tuple[int, Pixels]] = [(100, "float"), (100, "int"), (1000, "float")]
    service_url = servers["service-granian"].url("")
    expected = [
        label
        for rows, kind in bodies
        for label in service_labels(service_url, predict_body(rows, kind))
    ]
    agreement = {}
    for name in MLSERVERS:
        url = servers[name].url("")
        answered = [
            label
            for rows, kind in bodies
            for label in mlserver_labels(url, oip_body(rows, kind, MLSERVER_OUTPUTS))
        ]
        same = sum(a == b for a, b in zip(answered, expected, strict=True))
        agreement[name] = (same, len(expected))
    return agreement


def bench_all(
    duration: int, rounds: int, log_dir: Path, work: Path, cpus: CpuSplit = NO_SPLIT
) -> report.Run:
    """Start every target (idle ones use no CPU), then load the cells in interleaved rounds.

    Interleaving puts every target under the same background load, so the ratios stay
    meaningful on a shared machine; each cell reports the median round.
    """
    from serving.access.keys import add_key

    key_file = work / "keys.jsonl"
    authorization = "Bearer " + add_key(key_file, "bench", GUARDED_SCOPES)
    run = report.Run(duration=duration, rounds=rounds, cells=CELLS, cpus=cpus.describe())
    servers: dict[str, Server] = {}
    redis_dir = work / "redis"
    redis_dir.mkdir()
    redis = RedisServer(redis_dir, cpus.server_prefix())
    try:
        for target in build_targets(work, key_file, redis.url):
            servers[target.name] = start(target, log_dir, cpus.server_prefix())
        run.agreement = label_agreement(servers)
        bodies = {cell: cell.body() for cell in CELLS}
        samples: dict[Cell, list[LoadResult]] = {}
        for round_index in range(rounds):
            for cell in CELLS:
                url = servers[cell.target].url(cell.route)
                auth = authorization if cell.target in KEYED else ""
                connections = connections_for(cell.rows)
                client = cpus.client_prefix()
                if round_index == 0:  # warm-up, not recorded
                    run_wrk(url, bodies[cell], connections, 1, auth, client)
                result = run_wrk(url, bodies[cell], connections, duration, auth, client)
                samples.setdefault(cell, []).append(result)
                print(f"round {round_index} {cell} {result}", file=sys.stderr)
        run.loads = {cell: median_load(results) for cell, results in samples.items()}
        for name, server in servers.items():
            run.rss_mb[name] = worker_rss_mb(server)
            run.start_to_ready_s[name] = server.start_to_ready_s
    finally:
        for server in servers.values():
            stop(server.process)
        redis.stop()
    run.decision_records = decision_records(work / "decisions")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "performance.md")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let servers and wrk share every CPU (default: split them, bench/cpus.py)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("serving_benchmark: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    log_dir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    with tempfile.TemporaryDirectory(prefix="serving-bench-work-") as work:
        cpus = split_cpus(pin=not args.no_pin)
        run = bench_all(args.duration, args.rounds, log_dir, Path(work), cpus)
    shown_args = sys.argv[1:] if argv is None else argv
    text = report.render(run, shown_args)
    report.write(args.output, text)
    print(text)
    print(f"server logs: {log_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
