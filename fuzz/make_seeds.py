#!/usr/bin/python3
"""Writes hand-made seed inputs for the fuzz targets into OUT/<target>/ (default: fuzz/seeds).

The checked-in corpora (fuzz/corpus/<target>/) are these seeds plus what fuzzing found, merged
with libFuzzer's -merge=1 (scripts/fuzz.sh --merge). Run this only when a byte format in
fuzz/decode.h changes or a new kind of seed is wanted:
    fuzz/make_seeds.py /tmp/seeds && scripts/fuzz.sh --merge /tmp/seeds
Needs numpy (scripts/bootstrap.sh installs it)."""
import io
import json
import math
import os
import struct
import sys

import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'seeds')


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def npy(a, version=None):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=version, allow_pickle=False)
    return b.getvalue()


# ---- npy --------------------------------------------------------------------------------------
def npy_header(d, version=(1, 0)):
    h = d.encode('latin1')
    if version == (1, 0):
        return b'\x93NUMPY\x01\x00' + struct.pack('<H', len(h)) + h
    return b'\x93NUMPY' + bytes(version) + struct.pack('<I', len(h)) + h


npy_seeds = {
    'f8_2x3': npy(np.arange(6, dtype='<f8').reshape(2, 3) * 0.5 - 1),
    'f4_specials': npy(np.array([1.5, -0.0, np.inf, -np.inf, np.nan], dtype='<f4')),
    'f2_scalar': npy(np.array(-2.5, dtype='<f2')),
    'u2_bf16': npy(np.array([[0x3f80, 0xbf80], [0x7fc0, 0x0001]], dtype='<u2')),
    'f4_v2': npy(np.array([1, 2, 3], dtype='<f4'), version=(2, 0)),
    'f8_v3': npy(np.array([[7.0]], dtype='<f8'), version=(3, 0)),
    'f4_fortran': npy(np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3))),
    'f4_bigendian': npy(np.array([1, 2], dtype='>f4')),
    'f4_empty': npy(np.zeros((0,), dtype='<f4')),
    'f4_zero_dim_mid': npy(np.zeros((3, 0, 2), dtype='<f4')),
    'f2_5d': npy(np.arange(4, dtype='<f2').reshape(1, 2, 1, 2, 1)),
    'i8': npy(np.array([1, 2], dtype='<i8')),
    'hand_minimal': npy_header("{'descr':'<f4','fortran_order':False,'shape':(1,)}") + b'\0\0\x80\x3f',
    'hand_double_quotes': npy_header('{"descr": "<f8", "fortran_order": False, "shape": (), }') + bytes(8),
    'hand_long_dims': npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }") + bytes(8),
    'hand_overflow_shape': npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4), }"),
    'hand_negative_dim': npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"),
    'hand_not_tuple': npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }") + bytes(12),
    'hand_structured': npy_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }") + bytes(4),
    'hand_truncated_len': b'\x93NUMPY\x02\x00\x10',
    'hand_v4': b'\x93NUMPY\x04\x00' + bytes(4),
    'hand_escape': npy_header("{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,), }") + bytes(4),
}
for k, v in npy_seeds.items():
    put('npy', k + '.npy', v)


# ---- case -------------------------------------------------------------------------------------
def esc(b):
    return b.replace(b'\\', b'\\\\') + b'\\\n'


def case_bytes(cj, x, gamma=None, beta=None, dy=None):
    """The inverse of fuzz::split_case_files."""
    js = cj if isinstance(cj, bytes) else json.dumps(cj).encode()
    flags = (1 if gamma is not None else 0) | (2 if beta is not None else 0) | (4 if dy is not None else 0)
    out = esc(js) + esc(x)
    if gamma is not None:
        out += esc(gamma)
    if beta is not None:
        out += esc(beta)
    if dy is not None:
        out += dy
    return out + bytes([flags])


def case_json(N, C, spatial, G, dtype='f32', layout='nchw', affine=False, eps=1e-5, **extra):
    j = {'format': 'gnv-case', 'version': 1, 'N': N, 'C': C, 'spatial': spatial, 'G': G, 'eps': eps,
         'affine': affine, 'dtype': dtype, 'layout': layout}
    j.update(extra)
    return j


NP = {'f64': '<f8', 'f32': '<f4', 'f16': '<f2', 'bf16': '<u2'}


def tensors(N, C, spatial, dtype, layout, seed):
    rng = np.random.default_rng(seed)
    shape = (N, C, *spatial) if layout == 'nchw' else (N, *spatial, C)
    if dtype == 'bf16':
        mk = lambda s: (rng.standard_normal(s).astype('<f4').view('<u4') >> 16).astype('<u2')
    else:
        mk = lambda s: rng.standard_normal(s).astype(NP[dtype])
    return mk(shape), mk((C,)), mk((C,)), mk(shape)


def add_case(name, N, C, spatial, G, dtype='f32', layout='nchw', affine=False, backward=False, **kw):
    x, g, b, dy = tensors(N, C, spatial, dtype, layout, len(name))
    cj = case_json(N, C, spatial, G, dtype, layout, affine, **kw)
    put('case', name, case_bytes(cj, npy(x), npy(g) if affine else None, npy(b) if affine else None,
                                 npy(dy) if backward else None))


add_case('f32_nchw_affine_backward', 2, 4, [3, 3], 2, 'f32', 'nchw', True, True, stress='normal', seed=7)
add_case('bf16_nhwc', 1, 8, [5], 4, 'bf16', 'nhwc')
add_case('f16_rank3_backward', 1, 2, [2, 2, 2], 1, 'f16', 'nchw', False, True)
add_case('f64_rank0_affine', 3, 6, [], 3, 'f64', 'nhwc', True, False, eps=0)
add_case('f32_N0', 0, 4, [2], 2)
x, g, b, dy = tensors(1, 4, [2], 'f32', 'nchw', 1)
good = case_json(1, 4, [2], 2)
put('case', 'bad_json', case_bytes(b'{"format": "gnv-case", "N": [', npy(x)))
put('case', 'json_array', case_bytes(b'[1, 2]', npy(x)))
put('case', 'bad_version', case_bytes(case_json(1, 4, [2], 2, version=2), npy(x)))
put('case', 'bad_dtype', case_bytes(case_json(1, 4, [2], 2, dtype='f8'), npy(x)))
put('case', 'G_not_dividing', case_bytes(case_json(1, 4, [2], 3), npy(x)))
put('case', 'negative_eps', case_bytes(case_json(1, 4, [2], 2, eps=-1), npy(x)))
put('case', 'huge_N', case_bytes(case_json(2 ** 62, 4, [2], 2), npy(x)))
put('case', 'seed_negative', case_bytes(case_json(1, 4, [2], 2, seed=-1), npy(x)))
put('case', 'x_wrong_shape', case_bytes(good, npy(np.zeros((1, 4, 3), '<f4'))))
put('case', 'x_wrong_dtype', case_bytes(good, npy(np.zeros((1, 4, 2), '<f8'))))
put('case', 'x_truncated', case_bytes(good, npy(x)[:70]))
put('case', 'gamma_without_affine', case_bytes(good, npy(x), npy(g)))
put('case', 'affine_without_beta', case_bytes(case_json(1, 4, [2], 2, affine=True), npy(x), npy(g)))
put('case', 'dy_wrong_shape', case_bytes(good, npy(x), dy=npy(np.zeros((4,), '<f4'))))


# ---- differential -----------------------------------------------------------------------------
class Provider:
    """Builds the bytes that FuzzedDataProvider hands back as the given sequence of integral
    values: ConsumeIntegralInRange reads big-endian from the end of the data."""

    def __init__(self):
        self.consumed = b''

    def integral(self, v, lo, hi, size=8):
        r = hi - lo
        nbytes = 0
        while nbytes < size and (r >> (8 * nbytes)) > 0:
            nbytes += 1
        v -= lo
        assert 0 <= v <= r
        self.consumed += v.to_bytes(nbytes, 'big') if nbytes else b''

    def bits(self, b, width):
        self.integral(b, 0, (1 << (8 * width)) - 1, width)

    def data(self):
        return self.consumed[::-1]


DTYPES = ['f64', 'f32', 'f16', 'bf16']
WIDTH = {'f64': 8, 'f32': 4, 'f16': 2, 'bf16': 2}
EXP = {'f64': (-1022, 1023, 53), 'f32': (-126, 127, 24), 'f16': (-14, 15, 11), 'bf16': (-126, 127, 8)}


def bits_of(dtype, v):
    if dtype == 'f64':
        return struct.unpack('<Q', struct.pack('<d', v))[0]
    if dtype == 'f32':
        return struct.unpack('<I', struct.pack('<f', v))[0]
    if dtype == 'f16':
        return int(np.array(v, '<f2').view('<u2'))
    return struct.unpack('<I', struct.pack('<f', v))[0] >> 16


def differential(name, dtype='f32', layout='nchw', affine=False, backward=False, N=1, G=1, cpg=1,
                 spatial=(), eps_sel=0, eps_bits=None, tensors_spec=None):
    """tensors_spec: per tensor (x, gamma, beta, dy) a (base, step_exp, tags) triple; tags are
    ints 0..255 (raw tags take ('raw', bits))."""
    p = Provider()
    p.integral(DTYPES.index(dtype), 0, 3, 4)
    p.integral(1 if layout == 'nhwc' else 0, 0, 255, 1)
    p.integral(1 if affine else 0, 0, 255, 1)
    p.integral(1 if backward else 0, 0, 255, 1)
    p.integral(N, 0, 2)
    p.integral(G, 1, 4)
    p.integral(cpg, 1, 4)
    p.integral(len(spatial), 0, 3, 4)
    budget = 64 // max(N * G * cpg, 1)
    for e in spatial:
        p.integral(e, 1, max(1, min(budget, 8)))
        budget = max(budget // e, 1)
    p.integral(eps_sel, 0, 7, 4)
    acc = 'f64' if dtype == 'f64' else 'f32'
    if eps_sel == 7:
        p.bits(eps_bits, WIDTH[acc])
    lo, hi, prec = EXP[dtype]
    for base, step_exp, tags in tensors_spec:
        p.bits(bits_of(dtype, base), WIDTH[dtype])
        p.integral(step_exp, lo - prec + 1, hi, 4)
        for t in tags:
            if isinstance(t, tuple):
                p.integral(128, 0, 255, 1)
                p.bits(t[1], WIDTH[dtype])
            else:
                p.integral(t, 0, 255, 1)
    put('differential', name, p.data())


def spec(numel, C, affine, backward, x, gamma=None, beta=None, dy=None):
    out = [x]
    if affine:
        out += [gamma or (1.0, 0, [64 + 2] * C), beta or (0.0, 0, [64 + 0] * C)]
    if backward:
        out.append(dy or (0.0, -3, [(7 * i) % 64 for i in range(numel)]))
    return out


spread = lambda n: [(5 * i + 3) % 64 for i in range(n)]
for d in DTYPES:
    for lay in ('nchw', 'nhwc'):
        n = 2 * 4 * 3
        differential(f'{d}_{lay}_affine_backward', d, lay, True, True, N=2, G=2, cpg=2, spatial=(3,),
                     tensors_spec=spec(n, 4, True, True, (0.0, -4, spread(n)),
                                       (1.0, -3, spread(4)), (0.0, -2, spread(4))))
    m = 16
    differential(f'{d}_offset', d, 'nchw', False, True, N=1, G=1, cpg=4, spatial=(4,),
                 tensors_spec=spec(m, 4, False, True, (1e4 if d != 'f16' else 1e3,
                                                        (13 if d != 'f16' else 9) - EXP[d][2] + 3, spread(m))))
    differential(f'{d}_specials', d, 'nhwc', True, True, N=2, G=2, cpg=1, spatial=(2, 2),
                 tensors_spec=spec(16, 2, True, True, (1.0, -1, [64 + (i % 24) for i in range(16)]),
                                   (1.0, 0, [64 + 6, 64 + 2]), (0.0, 0, [64 + 4, 64 + 0])))
    differential(f'{d}_constant_eps0', d, 'nchw', True, True, N=1, G=2, cpg=2, spatial=(2,), eps_sel=1,
                 tensors_spec=spec(8, 4, True, True, (3.0, 0, [32] * 8)))
    differential(f'{d}_subnormal', d, 'nchw', False, True, N=2, G=1, cpg=2, spatial=(2,), eps_sel=1,
                 tensors_spec=spec(8, 2, False, True, (0.0, EXP[d][0] - EXP[d][2] + 1, spread(8))))
    differential(f'{d}_huge', d, 'nhwc', True, False, N=1, G=1, cpg=3, spatial=(2,),
                 tensors_spec=spec(6, 3, True, False, (-1.0, EXP[d][1], spread(6)),
                                   (1.0, 0, [64 + 9, 64 + 10, 64 + 2])))
    differential(f'{d}_raw', d, 'nchw', True, True, N=1, G=2, cpg=1, spatial=(),
                 tensors_spec=spec(2, 2, True, True, (0.0, 0, [('raw', 1), ('raw', (1 << (8 * WIDTH[d] - 1)) | 3)]),
                                   (0.0, 0, [('raw', bits_of(d, 2.0)), 64 + 5]), (0.0, 0, [64 + 13, 64 + 14]),
                                   (0.0, 0, [64 + 19, 64 + 20])))
differential('N0', 'f32', 'nchw', True, True, N=0, G=2, cpg=2, tensors_spec=spec(0, 4, True, True, (0.0, 0, [])))
differential('eps_raw_acc', 'f32', 'nchw', False, False, N=1, G=1, cpg=2, spatial=(2,), eps_sel=7,
             eps_bits=bits_of('f32', 1e-30), tensors_spec=spec(4, 2, False, False, (0.0, -140, spread(4))))
# The review's two f64 inputs whose fast-path values were certified wrong (subnormal x, mean 0:
# tests/test_oracle_paths.cpp TinyF64ValuesLeaveTheFastPath); checked in as
# fuzz/corpus/oracle_paths/repro-oracle-tiny-x-{y,dx}.
raw64 = lambda *vs: [('raw', bits_of('f64', v)) for v in vs]
tiny = 3 * 2.0 ** -1074
differential('repro-oracle-tiny-x-y', 'f64', 'nchw', True, True, N=1, G=1, cpg=1, spatial=(4,),
             tensors_spec=[(0.0, 0, raw64(tiny, -tiny, 1.0, -1.0)), (0.0, 0, raw64(2.0 ** 200)),
                           (0.0, 0, raw64(0.0)), (0.0, 0, raw64(1.0, 2.0, 3.0, 4.0))])
b = 1.3 * 2.0 ** -173
differential('repro-oracle-tiny-x-dx', 'f64', 'nchw', False, True, N=1, G=1, cpg=1, spatial=(4,), eps_sel=1,
             tensors_spec=[(0.0, 0, raw64(tiny, -tiny, 2.0 ** -173, -2.0 ** -173)), (0.0, 0, raw64(0.0, 0.0, b, -b))])
print(f'seeds written to {OUT}')
