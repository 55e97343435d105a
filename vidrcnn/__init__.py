"""vidrcnn: recurrent convolutional networks for video action recognition."""

__version__ = "0.1.0"
