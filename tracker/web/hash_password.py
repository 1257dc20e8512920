"""``python -m tracker.web.hash_password``: print a hash for ``web.auth.password_hash``."""

from __future__ import annotations

import getpass
import sys

from tracker.web.auth import hash_password

MIN_LENGTH = 8


def main() -> int:
    password = getpass.getpass("Password for the status table: ")
    if len(password) < MIN_LENGTH:
        print(f"use at least {MIN_LENGTH} characters", file=sys.stderr)
        return 2
    if getpass.getpass("Again: ") != password:
        print("the two passwords differ", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
