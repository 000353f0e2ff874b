"""`python -m qsci scenes`: what can be reconstructed, and whether it is here."""

NAME = "scenes"
HELP = "list benchmark scenes, real measurements and embedded scenes, and whether each is available locally"


def add_arguments(p):
    from qsci.cli._common import add_json_argument

    add_json_argument(p)


def run(args) -> int:
    from qsci.cli._common import emit_json, print_table
    from qsci.scenes import list_scenes

    scenes = list_scenes()
    if args.json:
        emit_json([{"name": s.name, "kind": s.kind, "available": s.available, "missing": list(s.missing),
                    "description": s.description} for s in scenes], args.json)
        return 0
    print_table(["name", "kind", "local", "description"],
                [[s.name, s.kind, s.status, s.description] for s in scenes])
    return 0
