"""`python -m qsci fetch`: download and verify public files (scenes, masks, checkpoints)."""

NAME = "fetch"
HELP = "download and verify registry files or official models (by git blob id)"


def add_arguments(p):
    p.add_argument("names", nargs="*", help="registry names (see `qsci scenes`) or official model names (official-s-4bit, ...)")
    p.add_argument("--all", action="store_true", help="fetch every registry file")


def run(args) -> int:
    from qsci import data
    from qsci.errors import QSCIError
    from qsci.zoo import OFFICIAL

    names = list(data.REGISTRY) if args.all else args.names
    if not names:
        raise QSCIError("name at least one file to fetch, or pass --all")
    for name in names:
        registry_name = OFFICIAL[name][0] if name in OFFICIAL else name
        path = data.fetch(registry_name)
        print(f"{name}: {path}")
    return 0
