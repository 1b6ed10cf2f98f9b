"""compdb.py DB FILE... - completes bear's compile_commands.json for
tests/analyse.sh: every FILE (paths relative to the source tree) must have
an entry, so that clang-tidy cannot skip one silently. The one source a
build leaves out by design, the ucontext task switch (compiled only by
--with-context=ucontext), is added with the flags of the other scheduler
sources and GB_CTX_UCONTEXT defined, as that build's config.h would."""

import json
import os
import sys

UCONTEXT = "src/gb/ctx_ucontext.c"
MODEL = "src/gb/stack.c"


def rel(entry, top):
    path = os.path.join(entry["directory"], entry["file"])
    return os.path.relpath(os.path.realpath(path), top)


def ucontext_entry(model, top):
    path = os.path.join(top, UCONTEXT)
    args = [a for a in model["arguments"]
            if a != "-o" and not a.endswith((".c", ".o"))]
    args[1:1] = ["-DGB_CTX_UCONTEXT=1"]
    args += ["-o", "ctx_ucontext.o", path]
    return {"directory": model["directory"], "file": path, "arguments": args}


def main():
    db_path, files = sys.argv[1], sys.argv[2:]
    top = os.getcwd()
    with open(db_path) as f:
        db = json.load(f)
    have = {rel(e, top): e for e in db}
    if UCONTEXT in files and UCONTEXT not in have:
        db.append(ucontext_entry(have[MODEL], top))
        have[UCONTEXT] = db[-1]
    missing = [f for f in files if f not in have]
    if missing:
        sys.exit("compdb: no compile command for %s" % " ".join(missing))
    with open(db_path, "w") as f:
        json.dump(db, f, indent=1)


main()
