"""``python -m floe_platform.codegen``: write every file generated from the models (``make schemas``)."""

from __future__ import annotations

import sys

from floe_platform.codegen.outputs import generated_files


def main() -> None:
    for path, text in generated_files().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
