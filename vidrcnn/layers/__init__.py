"""Building blocks: recurrent convolutional cells, the layer that runs them over time, per-frame wrappers."""

from vidrcnn.layers.cells import CELLS, GRUCell, LSTMCell, RCLCell, RecurrentCell, RNNCell, State, get_cell
from vidrcnn.layers.conv_recurrent import ConvRecurrent
from vidrcnn.layers.per_frame import PerFrame

__all__ = ["CELLS", "ConvRecurrent", "GRUCell", "LSTMCell", "PerFrame", "RCLCell", "RNNCell", "RecurrentCell",
           "State", "get_cell"]
