"""One base class for every error caused by user input or the environment: the CLI prints its
message on one line and exits with status 2, no traceback."""


class GancompressError(Exception):
    pass
