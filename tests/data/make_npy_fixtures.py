#!/usr/bin/env python3
"""Regenerates the numpy-written .npy fixtures that tests/test_npy.cpp reads (run in this dir)."""
import numpy as np
from numpy.lib import format as F


def save(name, a, version=None):
    with open(name, 'wb') as f:
        F.write_array(f, a, version=version, allow_pickle=False)


save('npy_f8_2x3.npy', np.arange(6, dtype='<f8').reshape(2, 3) * 0.5 - 1)
save('npy_f4_specials.npy', np.array([1.5, -0.0, np.inf, -np.inf, np.nan], dtype='<f4'))
save('npy_f2_scalar.npy', np.array(-2.5, dtype='<f2'))
save('npy_u2_2x2.npy', np.array([[0x3f80, 0xbf80], [0x7fc0, 0x0001]], dtype='<u2'))
save('npy_f4_v2.npy', np.array([1, 2, 3], dtype='<f4'), version=(2, 0))
save('npy_f8_v3.npy', np.array([[7.0]], dtype='<f8'), version=(3, 0))
save('npy_f4_fortran.npy', np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))
save('npy_f4_bigendian.npy', np.array([1, 2], dtype='>f4'))
save('npy_f4_empty.npy', np.zeros((0,), dtype='<f4'))
save('npy_f2_5d.npy', np.arange(4, dtype='<f2').reshape(1, 2, 1, 2, 1))
save('npy_i8.npy', np.array([1, 2], dtype='<i8'))
