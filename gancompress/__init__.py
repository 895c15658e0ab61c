"""gancompress: shrink image GAN generators into small, fast students, with honest metrics."""

__version__ = "0.1.0"
