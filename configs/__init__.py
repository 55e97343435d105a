"""The configs shipped with vidrcnn: this folder is installed as the package data ``vidrcnn.configs``, so an installed
wheel finds them (``vidrcnn train --config synthetic_rcn_gru_s``)."""
