"""Building blocks: recurrent convolutional cells, the layer that runs them over time, per-frame wrappers."""

from vidrcnn.layers.cells import (
           CELLS,
           GRUCell,
           LSTMCell,
           RCLCell,
           RecurrentCell,
           RNNCell,
           State,
           compile_steps,
           get_cell,
)
from vidrcnn.layers.conv_recurrent import ConvRecurrent
from vidrcnn.layers.mingru import MinGRUCell
from vidrcnn.layers.per_frame import PerFrame

# Registered here, not in cells.py: mingru.py builds on cells.py, which therefore cannot import it.
CELLS["mingru"] = MinGRUCell

__all__ = ["CELLS", "ConvRecurrent", "GRUCell", "LSTMCell", "MinGRUCell", "PerFrame", "RCLCell", "RNNCell",
           "RecurrentCell", "State", "compile_steps", "get_cell"]
