"""`graphc cache info` and `graphc cache clear`: what the compile cache holds, and emptying it."""
from graphc.backends import BACKENDS
from graphc.runtime.cache import cache_dir, cache_report, clear_cache


def human_size(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def cmd_cache(args):
    if args.action == "clear":
        files, size = clear_cache(args.backend)
        what = f"the {args.backend} folder of " if args.backend else ""
        print(f"removed {files} files ({human_size(size)}) from {what}{cache_dir()}")
        return 0
    report = {k: v for k, v in cache_report().items() if args.backend in (None, k)}
    print(f"graphc cache: {cache_dir()} (GRAPHC_CACHE_DIR, else XDG_CACHE_HOME/graphc, else ~/.cache/graphc)")
    if not report:
        print("empty")
        return 0
    rows = [(name, r["modules"], r["compiled"], human_size(r["bytes"])) for name, r in sorted(report.items())]
    total = [sum(r[k] for r in report.values()) for k in ("modules", "compiled", "bytes")]
    rows.append(("total", total[0], total[1], human_size(total[2])))
    print(f"{'backend':<10}{'modules':>9}{'compiled files':>16}{'size':>11}")
    for name, modules, compiled, size in rows:
        print(f"{name:<10}{modules:>9}{compiled:>16}{size:>11}")
    return 0


def add_parser(sub, common, fmt):
    c = sub.add_parser("cache", help="show or empty the compile cache", parents=[common], **fmt(
        "Show what the compile cache holds (emitted modules and their compiled files, per backend), or "
        "delete graphc's files from it. Deleting is always safe: modules are rewritten and kernels "
        "recompiled on demand.",
        ["graphc cache info", "graphc cache clear", "graphc cache clear --backend numba"]))
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument("--backend", choices=sorted(BACKENDS), help="only this backend's folder")
    c.set_defaults(fn=cmd_cache)
