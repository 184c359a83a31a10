# The CUDA implementation (optional): filled in by the CUDA work.
