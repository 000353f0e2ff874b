"""`python -m qsci models`: every reconstruction method and whether its weights are here."""

NAME = "models"
HELP = "list reconstruction methods (ours, official, gap-tv) and whether each is available"


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print a JSON list")


def run(args) -> int:
    from qsci.cli._common import emit_json
    from qsci.zoo import list_methods

    methods = list_methods()
    if args.json:
        emit_json([m.to_json() for m in methods], None)
        return 0
    for m in methods:
        bits = "fp32" if m.bits >= 32 else f"{m.bits}-bit"
        print(f"{m.name:20s} {bits:6s} {m.source:9s} {'available' if m.available else 'not downloaded':15s} {m.description}")
    return 0
