"""`python -m loradrop_local.simulator`: the simulator on its own (benchmarks run it out of process)."""

from __future__ import annotations

import threading

from loradrop_local.simulator.server import Simulator


def main(argv: list[str] | None = None) -> int:
    """Serve the simulator on its own (benchmarks run it out of process)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m loradrop_local.simulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--completed-task",
        action="append",
        default=[],
        metavar="ID:BYTES",
        help="a finished task serving an output of BYTES bytes",
    )
    args = parser.parse_args(argv)
    sim = Simulator(port=args.port).start()
    for spec in args.completed_task:
        task_id, size = spec.split(":")
        sim.add_completed_task(task_id, int(size))
    print(sim.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
