"""Building blocks: recurrent convolutional cells, the layer that runs them over time, per-frame wrappers."""

from vidrcnn.layers.cells import CELLS, GRUCell, LSTMCell, RCLCell, RNNCell, compile_steps, get_cell
from vidrcnn.layers.conv_recurrent import ConvRecurrent
from vidrcnn.layers.fold import fold_batch_norms
from vidrcnn.layers.mingru import MinGRUCell
from vidrcnn.layers.per_frame import PerFrame
from vidrcnn.layers.recurrent_cell import CellOptions, RecurrentCell, State

__all__ = ["CELLS", "CellOptions", "ConvRecurrent", "GRUCell", "LSTMCell", "MinGRUCell", "PerFrame", "RCLCell",
           "RNNCell", "RecurrentCell", "State", "compile_steps", "fold_batch_norms",
           "get_cell"]
