"""`python -m qsci scenes`: what can be reconstructed, and whether it is here."""

NAME = "scenes"
HELP = "list benchmark scenes, real measurements and embedded scenes, and whether each is available locally"


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    from qsci.cli._common import emit_json
    from qsci.scenes import list_scenes

    scenes = list_scenes()
    if args.json:
        emit_json([{"name": s.name, "kind": s.kind, "available": s.available, "description": s.description} for s in scenes], None)
        return 0
    for s in scenes:
        print(f"{s.name:28s} {s.kind:10s} {'yes' if s.available else 'no (fetch on demand)':22s} {s.description}")
    return 0
