"""``edgetwin cloud``: the cloud twin service and the gateway's link to it.

* ``edgetwin cloud serve [--config FILE] [--host H] [--port P] [--database-url URL]``
* ``edgetwin cloud add-gateway --patient ID --out FILE [--gateway-id ID] [--url URL]`` — register a
  gateway and write its credential file (mode 0600; the key is never printed)
* ``edgetwin cloud seed --patient ID (--virtual NAME | --profile FILE)`` — publish a patient's
  first parameters, the starting point of re-personalisation
* ``edgetwin cloud repersonalise [--config FILE]`` — run one re-personalisation round now
* ``edgetwin cloud sync --store FILE --credential FILE [--params-dir DIR] [--demo-day]`` — from
  the gateway: upload the store's outbox, then pull and adopt new parameters
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("cloud", help="the cloud twin service and gateway sync", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    csub = p.add_subparsers(dest="cloud_command", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", metavar="FILE", help="cloud TOML configuration ([cloud] table)")
        q.add_argument(
            "--database-url", help="sqlite:///PATH or postgresql://... (overrides config and DATABASE_URL)"
        )

    s = csub.add_parser("serve", help="run the cloud HTTP service")
    common(s)
    s.add_argument("--host", help="bind address (default from config: 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default from config: 8080)")
    s.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    s.set_defaults(handler=_serve)

    a = csub.add_parser("add-gateway", help="register a gateway and write its credential file")
    common(a)
    a.add_argument("--patient", required=True, help="patient id the gateway belongs to")
    a.add_argument("--gateway-id", help="gateway id (default: generated)")
    a.add_argument("--out", required=True, metavar="FILE", help="credential file to write (mode 0600)")
    a.add_argument("--url", help="cloud URL written into the credential (default: config public_url)")
    a.set_defaults(handler=_add_gateway)

    sd = csub.add_parser("seed", help="publish a patient's first twin parameters (before re-personalisation)")
    common(sd)
    sd.add_argument("--patient", required=True, help="patient id")
    src = sd.add_mutually_exclusive_group(required=True)
    src.add_argument("--virtual", metavar="NAME", help="a cohort patient (adult#001 ...): benches and demos")
    src.add_argument("--profile", metavar="FILE", help="the patient's therapy profile (TOML)")
    sd.set_defaults(handler=_seed)

    r = csub.add_parser("repersonalise", help="run one re-personalisation round now")
    common(r)
    r.set_defaults(handler=_repersonalise)

    y = csub.add_parser("sync", help="(gateway side) upload the outbox and pull parameter updates")
    y.add_argument("--store", required=True, metavar="FILE", help="the gateway's store (created if missing)")
    y.add_argument("--credential", required=True, metavar="FILE", help="credential file from add-gateway")
    y.add_argument(
        "--params-dir", metavar="DIR", help="where adopted parameters live (default: beside the store)"
    )
    y.add_argument(
        "--ca-bundle", metavar="FILE", help="CA certificates for a private cloud (TLS is always verified)"
    )
    y.add_argument("--demo-day", action="store_true",
                   help="first store one simulated patient-day (virtual patient adult#001) to have something to sync")  # fmt: skip
    y.set_defaults(handler=_sync)


def _config(args: argparse.Namespace) -> Any:
    from sync.cloud.config import CloudConfig

    cfg = CloudConfig.load(args.config)
    over: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        over["database_url"] = args.database_url
    if getattr(args, "host", None):
        over["host"] = args.host
    if getattr(args, "port", None) is not None:
        over["port"] = args.port
    return cfg.with_values(over, "command line")


def _serve(args: argparse.Namespace) -> int:
    import logging

    from sync.cloud.app import create_app
    from sync.cloud.db import CloudDB
    from sync.cloud.jobs import JobScheduler, load_identify, make_runner
    from sync.cloud.server import serve

    cfg = _config(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    db = CloudDB(cfg.database_url)
    scheduler = None
    if cfg.identify:
        scheduler = JobScheduler(db, load_identify(cfg.identify), make_runner(cfg.runner), cfg.job_interval_h * 3600,
                                 window_days=cfg.window_days, min_readings=cfg.min_readings).start()  # fmt: skip
    else:
        logging.getLogger("edgetwin.cloud").info("re-personalisation off: no identify function configured")
    try:
        serve(create_app(db), cfg.host, cfg.port, log_level=args.log_level)
    finally:
        if scheduler is not None:
            scheduler.stop()
        db.close()
    return 0


def _add_gateway(args: argparse.Namespace) -> int:
    import secrets
    from pathlib import Path

    from sync.auth import Credential
    from sync.cloud.db import CloudDB

    cfg = _config(args)
    gateway_id = args.gateway_id or f"gw-{secrets.token_hex(4)}"
    cred = Credential.issue(gateway_id, args.patient, args.url or cfg.url)
    out = Path(args.out)
    if out.exists():
        from edgetwin.cli import UsageError

        raise UsageError(f"{out} exists; refusing to overwrite a credential")
    db = CloudDB(cfg.database_url)
    try:
        db.add_gateway(cred.gateway_id, cred.patient_id, cred.key)
    finally:
        db.close()
    cred.save(out)
    print(
        f"gateway {cred.gateway_id} registered for patient {cred.patient_id}; credential written to {out} (mode 600)"
    )
    return 0


def _seed(args: argparse.Namespace) -> int:
    import time

    from sync.cloud.db import CloudDB
    from sync.cloud.identify import seed_params
    from sync.downlink import validate_params

    cfg = _config(args)
    params = seed_params(virtual=args.virtual, profile_path=args.profile)
    validate_params(params, args.patient)
    source = f"virtual patient {args.virtual}" if args.virtual else f"profile {args.profile}"
    db = CloudDB(cfg.database_url)
    try:
        version = db.add_param_update(args.patient, params, f"seed: {source}", int(time.time() * 1000))
    finally:
        db.close()
    print(f"patient {args.patient}: parameters v{version} published from {source}")
    return 0


def _repersonalise(args: argparse.Namespace) -> int:
    import time

    from edgetwin.cli import UsageError
    from sync.cloud.db import CloudDB
    from sync.cloud.jobs import load_identify, make_runner, repersonalise

    cfg = _config(args)
    if not cfg.identify:
        raise UsageError("no identify function configured (cloud.identify or EDGETWIN_CLOUD_IDENTIFY)")
    db = CloudDB(cfg.database_url)
    runner = make_runner(cfg.runner)
    try:
        outcomes = repersonalise(db, load_identify(cfg.identify), runner, now_ms=int(time.time() * 1000),
                                 window_days=cfg.window_days, min_readings=cfg.min_readings)  # fmt: skip
    finally:
        runner.close()
        db.close()
    for o in outcomes:
        print(f"{o.patient_id}: {o.status}{f' v{o.version}' if o.version else ''} {o.detail}")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from datetime import timedelta
    from pathlib import Path

    import requests

    from edgetwin.store import Store
    from edgetwin.timeutil import utc_now
    from sync.auth import Credential
    from sync.downlink import ParamsKeeper, pull_and_adopt
    from sync.errors import SyncError
    from sync.transport import CloudClient
    from sync.uploader import Uploader

    cred = Credential.load(args.credential)
    client = CloudClient(cred, requests.Session(), ca_bundle=args.ca_bundle)
    store_path = Path(args.store)
    with Store.open(store_path) as store:
        if args.demo_day:
            from sync.demo import patient_day

            start = (utc_now() - timedelta(days=1)).replace(second=0, microsecond=0)
            acks = store.add_many(patient_day(start))
            print(f"stored a simulated day: {sum(not a.duplicate for a in acks)} records")
        uploader = Uploader(store, client)
        total = 0
        while True:
            report = uploader.sync_once()
            total += report.records
            if report.error or report.backlog == 0 or report.batches == 0:
                break
        print(
            f"uploaded {total} records; backlog {report.backlog}{'; error: ' + report.error if report.error else ''}"
        )
    keeper = ParamsKeeper(args.params_dir or store_path.with_name(store_path.name + ".params"))
    try:
        adopted = pull_and_adopt(client, keeper, cred)
    except SyncError as exc:
        print(f"parameter update not adopted: {exc}")
        return 1
    print(f"adopted parameters v{keeper.current_version}" if adopted else "parameters up to date")
    return 1 if report.error else 0
