"""python -m devcluster up [--nodes N] [--label node-1:k=v ...] | down | status | build"""

from __future__ import annotations

import argparse
import sys

from devcluster import build
from devcluster.cluster import Cluster, run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 dev.py cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build if needed, start the cluster, wait for Ready nodes")
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NODE:KEY=VALUE",
        help="a label for one node, e.g. node-2:role=edge (repeatable)",
    )
    sub.add_parser("down", help="stop everything, remove namespaces and the run folder")
    sub.add_parser("status", help="what runs, and the nodes' readiness")
    sub.add_parser("build", help="only build the binaries")
    args = parser.parse_args(argv)

    if args.command == "build":
        return build.main()
    if args.command == "up":
        labels: dict[str, dict[str, str]] = {}
        for item in args.label:
            node, _, pair = item.partition(":")
            key, sep, value = pair.partition("=")
            if not sep or not node or not key:
                parser.error(f"--label {item!r}: expected NODE:KEY=VALUE")
            labels.setdefault(node, {})[key] = value
        cluster = Cluster(run_dir(), node_count=args.nodes, node_labels=labels)
        cluster.up()
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"export PATH={build.binaries().folder}:$PATH   # kubectl and helm of this cluster")
        return 0
    cluster = Cluster.existing()
    if args.command == "down":
        cluster.down()
        return 0
    running = {name: cluster.pid(name) for name in cluster.components()}
    for name, pid in running.items():
        print(f"{name:28} {'pid ' + str(pid) if pid else 'not running'}")
    if running:
        print(f"ready nodes: {', '.join(sorted(cluster.ready_nodes())) or 'none'}")
    else:
        print("not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
