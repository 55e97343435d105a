"""Dataset formats: the common split types and checks (:mod:`.common`), and one module per format, each a function
from the official files to samples. A format never imports another; :mod:`vidrcnn.data.splits` asks each in turn."""
