"""``edgetwin run --config FILE``: the gateway daemon (what the systemd unit starts).

Runs until SIGTERM or SIGINT, then saves a last twin checkpoint and exits 0. A bad
configuration, a locked, corrupt or full store, or a taken status port exits 2 with one line
naming the problem (the store file is never replaced).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run the gateway daemon",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the gateway configuration (TOML)")
    p.add_argument("--log-format", choices=("text", "json"), help="override [log] format")
    p.set_defaults(handler=run)


RELEASE_EVERY_CYCLES = 12  # about hourly: a cycle every 5 min, or sooner on a new reading


def run(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import logging
    import signal

    from edgetwin.gateway import Gateway, load_config
    from edgetwin.gateway.logs import configure_logging
    from edgetwin.gateway.memory import release_startup_memory

    log = logging.getLogger("edgetwin.run")
    cfg = load_config(args.config)
    if args.log_format:
        cfg = dataclasses.replace(cfg, log_format=args.log_format)
    configure_logging(cfg.log_format, cfg.log_level, cfg.log_file)

    async def main() -> None:
        gw = Gateway(cfg)

        def release_memory(g: Gateway) -> None:
            # After the first cycle every kernel is loaded: give back what start-up paged in
            # (edgetwin.gateway.memory); every RELEASE_EVERY_CYCLES after that, for anything loaded late.
            if g.cycles.count % RELEASE_EVERY_CYCLES == 1:
                mem = release_startup_memory()
                log.log(
                    logging.INFO if g.cycles.count == 1 else logging.DEBUG,
                    "memory released: resident %.0f -> %.0f MB",
                    mem["before_mb"],
                    mem["after_mb"],
                    extra={"event": "memory_released", **mem},
                )

        gw.on_cycle.append(release_memory)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gw.request_stop)
        await gw.run()

    asyncio.run(main())
    return 0
