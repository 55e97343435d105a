"""Generate the synthetic UCF101-format dataset whose classes need temporal order (see vidrcnn.data.synthetic).

    python tools/make_synthetic.py data/synthetic                      # 11 classes x 25 groups x 4 clips, 32x32
    python tools/make_synthetic.py /tmp/tiny --groups 8 --clips-per-group 1 --frames 16 --size 32
    python tools/make_synthetic.py data/hmdb --format hmdb51           # HMDB51's layout and split files
    python tools/make_synthetic.py data/k400 --format kinetics         # Kinetics' CSVs and folders
    python tools/make_synthetic.py data/ssv2 --format ssv2             # SSv2's JSON and VP9 .webm files
    python tools/make_synthetic.py data/frames --format frames         # JPEG frame folders, list.txt
"""

from __future__ import annotations

from vidrcnn.cli import run_tool
from vidrcnn.commands.make_synthetic import main

__all__ = ["main", "run_tool"]  # `vidrcnn make-synthetic` runs the same main

if __name__ == "__main__":
    raise SystemExit(run_tool(main))
