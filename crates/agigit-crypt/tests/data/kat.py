#!/usr/bin/env python3
"""Independent known-answer computation for agigit-crypt's sealed-object format (version 1),
using the `cryptography` package (OpenSSL), not the Rust code. Regenerate with:
    python3 kat.py > kat.txt
Lines: name=hex."""
import struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes

def seal(key, ad, plaintext, segment_size, salt, prefix):
    info = b"agigit-crypt v1 segment key" + struct.pack("<Q", len(ad)) + ad
    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)
    header = b"AGSE" + bytes([1]) + struct.pack("<I", segment_size) + salt + prefix
    segments = [plaintext[i:i + segment_size] for i in range(0, len(plaintext), segment_size)] or [b""]
    out = header
    for i, seg in enumerate(segments):
        nonce = prefix + struct.pack(">I", i) + bytes([1 if i == len(segments) - 1 else 0])
        out += AESGCM(subkey).encrypt(nonce, seg, None)
    return out

key = bytes([0x11] * 32)
salt = bytes(range(32))
prefix = bytes([0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6])
cases = [
    ("empty", b"", 8),
    ("one_segment", b"hello", 8),
    ("exact_two_segments", b"0123456789abcdef", 8),
    ("three_segments", b"The quick brown fox jumps", 10),
]
print("key=" + key.hex())
print("salt=" + salt.hex())
print("prefix=" + prefix.hex())
print("ad=" + b"agigit/test-object".hex())
for name, pt, size in cases:
    print(f"{name}.segment_size={size}")
    print(f"{name}.plaintext=" + pt.hex())
    print(f"{name}.sealed=" + seal(key, b"agigit/test-object", pt, size, salt, prefix).hex())

# Key wrap (scheme 1) with a fixed ephemeral key, for `EcdhWrap::unwrap`.
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

def xonly(priv):
    return priv.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)[1:]

reader = ec.derive_private_key(0x3 * (1 << 200) + 12345, ec.SECP256K1())
ephemeral = ec.derive_private_key(0x7 * (1 << 190) + 999, ec.SECP256K1())
reader_x = xonly(reader)
lifted = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), b"\x02" + reader_x)
shared = ephemeral.exchange(ec.ECDH(), lifted)
eph = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
           info=b"agigit-crypt v1 key wrap" + eph + reader_x).derive(shared)
content_key = bytes([0x5c] * 32)
wrapped = eph + AESGCM(kek).encrypt(bytes(12), content_key, eph + reader_x)
print("wrap.reader_secret=" + reader.private_numbers().private_value.to_bytes(32, "big").hex())
print("wrap.reader_x=" + reader_x.hex())
print("wrap.content_key=" + content_key.hex())
print("wrap.wrapped=" + wrapped.hex())
