"""``edgetwin config check FILE``: validate a gateway configuration without starting anything.

Prints what the gateway would run with, or one line naming the key and the problem (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="check a gateway configuration file", description=__doc__)
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate FILE and print a summary")
    c.add_argument("file", metavar="FILE")
    c.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    from edgetwin.gateway import load_config
    from edgetwin.gateway.safety_stage import check_limits

    cfg = load_config(args.file)
    limits_summary = check_limits(cfg)
    prof = cfg.profile
    basal = ", ".join(f"{s // 60:02d}:{s % 60:02d} {r:g} U/h" for s, r in prof.basal_schedule)
    print(f"{args.file}: OK")
    print(f"  mode          {cfg.mode}")
    print(f"  data dir      {cfg.data_dir} (store {cfg.db_path.name})")
    for role, name in cfg.devices.items():
        print(f"  {role:<13} {name}")
    print(
        f"  profile       {prof.weight_kg:g} kg, CR {prof.carb_ratio_g_per_u:g} g/U, "
        f"ISF {prof.correction_factor_mg_dl_per_u:g} mg/dL/U, target {prof.target_mg_dl:g} mg/dL, "
        f"DIA {prof.insulin_duration_h:g} h, {prof.timezone}"
    )
    print(f"  basal         {basal}")
    print(f"  limits        {limits_summary}")
    sync = (
        "off (data stays local)"
        if cfg.sync is None
        else f"{cfg.sync.endpoint} every {cfg.sync.interval_min:g} min"
    )
    print(f"  sync          {sync}")
    status = f"http://127.0.0.1:{cfg.status_port}/" if cfg.status_enabled else "off"
    print(f"  status page   {status}")
    print(f"  logs          {cfg.log_format} to {cfg.log_file or 'standard error'} ({cfg.log_level})")
    if cfg.clock.kind != "real":
        print(f"  clock         scaled x{cfg.clock.factor:g} (bench only)")
    return 0
