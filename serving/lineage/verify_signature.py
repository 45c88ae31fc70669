"""``python -m serving.lineage.verify_signature``: the pre-start signature check (and
``make sign``).

Verify (default): with ``DIGITS_MODEL_PUBLIC_KEY`` set, print the result as one JSON line and
exit 0 when the bundle verifies over the served files, 1 when it does not; without a key,
print nothing and exit 0. ``python -m serving`` runs this before its workers start; a
Kubernetes initContainer or CI can run it on its own.

Sign: ``--sign PRIVATE_KEY`` writes the bundle (``--out``, default ``models/model.sig``) over
the served files and ``models/registry.json`` when it exists; exit 1 when a served file is
missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from serving.lineage import LineageError
from serving.lineage.signature import encode_result, sign, signature_path, verify
from serving.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.lineage.verify_signature", description=__doc__
    )
    parser.add_argument("--sign", type=Path, metavar="PRIVATE_KEY", help="sign instead")
    parser.add_argument("--out", type=Path, help="signature bundle path (with --sign)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"verify_signature: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.sign is not None:
        out = args.out or signature_path(settings)
        try:
            digests = sign(settings, args.sign, out)
        except LineageError as exc:
            print(f"verify_signature: cannot sign: {exc}", file=sys.stderr)
            return 1
        print(f"signed {len(digests)} files -> {out}")
        for rel, digest in digests.items():
            print(f"  {digest}  {rel}")
        return 0
    if not settings.model_public_key_path:
        return 0
    result = verify(settings)
    print(encode_result(result))
    if result.status != "verified":
        print(f"verify_signature: {result.reason}: {result.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
