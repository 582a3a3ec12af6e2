"""Screenshot of the rendered leaderboard page (leaderboard/index.html) in headless Chromium, for the README.

    .venv/bin/python scripts/screenshot_board.py [--out docs/board.png] [--width 1280] [--height 2400]

The page opens from disk; Debian's ``chromium`` renders it off-screen.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--page", type=Path, default=Path("leaderboard/index.html"))
    ap.add_argument("--out", type=Path, default=Path("docs/board.png"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    a = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found (Debian: apt-get install chromium)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp}", f"--window-size={a.width},{a.height}",
                        f"--screenshot={a.out.resolve()}", a.page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
