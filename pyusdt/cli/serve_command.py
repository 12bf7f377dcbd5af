"""`pyusdt serve CONFIG`: a long-running Prometheus exporter of the metrics a
JSON config declares (pyusdt.serve).  SIGHUP reloads the config; SIGTERM and
SIGINT end it with exit status 0, every probe detached."""
from __future__ import annotations

import argparse
import sys

from pyusdt.cli.target_args import Subcommands
from pyusdt.serve.config import parse_listen
from pyusdt.serve.config_file import load_config
from pyusdt.serve.defaults import DEFAULT_LISTEN
from pyusdt.serve.run import serve


def add_command(sub: Subcommands) -> None:
    p = sub.add_parser("serve", help="export aggregations as Prometheus metrics over HTTP",
                       description="Export the metrics CONFIG (JSON) declares on http://HOST:PORT/metrics. "
                                   "SIGHUP reloads CONFIG; SIGTERM or SIGINT stops.")
    p.add_argument("config", metavar="CONFIG", help="the JSON config file (see README, Serving metrics)")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help=f"where to serve /metrics (default: the config's \"listen\", else {DEFAULT_LISTEN})")
    p.add_argument("--check", action="store_true", help="check the config, print what it exports, and exit")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    config = load_config(args.config)
    host, port = parse_listen(args.listen or config.listen or DEFAULT_LISTEN)
    if args.check:
        for m in config.metrics:
            print(f"{m.exported_base(config.namespace)}{'_total' if m.is_counter else ''}  {m.kind}  "
                  f"{', '.join(t.label for t in m.targets)}")
        print(f"pyusdt: serve: {args.config}: {len(config.metrics)} metric(s), OK", file=sys.stderr)
        return 0
    return serve(config, host, port, config_path=args.config)
