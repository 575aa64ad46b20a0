# Reference vectors for src/media/codec.rs from Sippy's libg722 (the spandsp G.722 code), PyPI package "g722".
import G722, array
def signal():
    out = []; phase = 0; lcg = 1
    for n in range(8000):
        inc = 100 + 3 * n
        phase = (phase + inc) & 0xFFFF
        tri = phase - 16384 if phase < 32768 else 49151 - phase
        lcg = (lcg * 1103515245 + 12345) & 0x7FFFFFFF
        noise = ((lcg >> 16) & 0x7FFF) - 16384
        x = tri // 2 + noise // 8
        if 4000 <= n < 5000:
            x = x // 64
        out.append(x)
    return out
x = array.array('h', signal())
enc = G722.G722(16000, 64000).encode(x)
open('g722_ref.g722', 'wb').write(enc)
dec = G722.G722(16000, 64000).decode(enc)
open('g722_ref_decoded.s16le', 'wb').write(dec.tobytes())
print(len(enc), len(dec), list(x[:5]))
