from types import SimpleNamespace

from hwgen.compiler import walk_deltas
from hwgen.rtl.sequencer import pixel_records


def walk(h, w, stride, pad, pool, pw, walk_len, npix, in_base):
    start, deltas = walk_deltas(h, w, stride, pad, pool, pw)
    fields = {"start_iy": start[0], "start_ix": start[1], "start_base": start[2],
              "pool": pool, "pw": pw, "walk_len": walk_len, "npix": npix, "in_h": h,
              "in_w": w, "in_base": in_base}
    for level, (diy, dix, dbase) in enumerate(deltas):
        fields.update({f"d{level}_iy": diy, f"d{level}_ix": dix, f"d{level}_base": dbase})
    return SimpleNamespace(**fields)


def test_records_of_a_padded_convolution():
    # a 3x3 kernel, padding 1, on a 2x3 image at buffer address 2 (5-bit addresses): six
    # output pixels walked as two tiles of 4 rows, the last two filling the second tile
    desc = walk(2, 3, 1, 1, 1, 3, walk_len=8, npix=6, in_base=2)
    records = pixel_records(desc, addr_width=5, k_max=3)
    # (addr, ylo, yhi, xlo, xhi, valid), counted by hand: pixel (oy, ox) has its corner
    # at (oy - 1, ox - 1), address 2 + 3·(oy - 1) + (ox - 1) modulo 32, and the kernel rows
    # ky with 0 <= oy - 1 + ky < 2, columns kx with 0 <= ox - 1 + kx < 3
    assert [tuple(r.values()) for r in records] == [
        (30, 1, 3, 1, 3, 1), (31, 1, 3, 0, 3, 1), (0, 1, 3, 0, 2, 1),
        (1, 0, 2, 1, 3, 1), (2, 0, 2, 0, 3, 1), (3, 0, 2, 0, 2, 1),
        (4, 0, 1, 1, 3, 0), (5, 0, 1, 0, 3, 0)]


def test_records_clamp_to_the_largest_kernel():
    # a 1x1 kernel on a 4x4 image, max-pooled 2x2, in a program whose largest kernel side
    # is 2: every window is [0, 2) clamped from [0, 4 - i)
    desc = walk(4, 4, 1, 0, 2, 2, walk_len=4, npix=16, in_base=0)
    records = pixel_records(desc, addr_width=4, k_max=2)
    # pool-window order: (0,0), (0,1), (1,0), (1,1) of the first window
    assert [r["addr"] for r in records] == [0, 1, 4, 5]
    assert [(r["ylo"], r["yhi"], r["xlo"], r["xhi"]) for r in records] == [(0, 2, 0, 2)] * 4
    assert all(r["valid"] for r in records)
