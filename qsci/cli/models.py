"""`python -m qsci models`: every reconstruction method and whether its weights are here."""

NAME = "models"
HELP = "list reconstruction methods (ours, official, gap-tv) and whether each is available"


def add_arguments(p):
    from qsci.cli._common import add_json_argument

    add_json_argument(p)


def run(args) -> int:
    from qsci.cli._common import emit_json, print_table
    from qsci.zoo import list_methods

    methods = list_methods()
    if args.json:
        emit_json([m.to_json() for m in methods], args.json)
        return 0
    print_table(["name", "bits", "source", "weights", "description"],
                [[m.name, "fp32" if m.bits >= 32 else f"{m.bits}-bit", m.source,
                  "available" if m.available else "not downloaded", m.description] for m in methods])
    return 0
