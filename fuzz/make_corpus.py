#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/corpus/ (deterministic: gzip mtime 0). Run from anywhere:
    python3 fuzz/make_corpus.py
Seeds are small valid files and slightly broken variants of them; the harness input formats are described at the
top of each fuzz/fuzz_<name>.cpp. The safetensors seeds match what save_safetensors writes byte for byte."""
import gzip
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")
SPECS = os.path.join(os.path.dirname(ROOT), "specs")
NEXT = b"--next-file--"


def gz(b):
    return gzip.compress(b, compresslevel=9, mtime=0)


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- netspec
def netspec():
    for f in sorted(os.listdir(SPECS)):  # the shipped specs, each well under 2 KB
        if f.endswith(".json"):
            with open(os.path.join(SPECS, f), "rb") as src:
                write("netspec", f, src.read())
    tiny = {"name": "t", "imageH": 2, "imageW": 2, "channels": 1,
            "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 4, "fanOut": 2}]}
    write("netspec", "tiny.json", json.dumps(tiny))
    two = {"name": "two", "imageH": 3, "imageW": 3, "channels": 2,
           "layers": [{"type": "flatten"}, {"type": "dense", "fanIn": 18, "fanOut": 5, "activation": "relu"},
                      {"type": "dense", "fanIn": 5, "fanOut": 3}],
           "recipe": {"optimizer": "sgd", "lr": 0.01, "batch": 7, "epochs": 1, "momentum": 0.9,
                      "labelSmoothing": 0.1}}
    write("netspec", "two_dense_recipe.json", json.dumps(two, indent=1))
    conv = {"name": "c", "imageH": 5, "imageW": 6, "channels": 2, "padStyle": "symmetric",
            "layers": [{"type": "conv2d", "ic": 2, "oc": 3, "k": 3, "stride": 2, "padding": "same", "activation": "relu"},
                       {"type": "convBn", "ic": 3, "oc": 2, "k": 1, "padding": "valid"},
                       {"type": "maxPool", "size": 3, "stride": 2},
                       {"type": "flatten"}, {"type": "dense", "fanIn": 8, "fanOut": 2}],
            "recipe": {"optimizer": "adam", "lr": 0.001, "batch": 2, "epochs": 1, "weightDecay": 0.5, "cosine": False,
                       "warmupEpochs": 0.5, "clipNorm": 1, "augmentCropPad": 1, "augmentFlip": True}}
    write("netspec", "conv_pool_recipe.json", json.dumps(conv))
    drop = {"name": "d", "imageH": 4, "imageW": 4, "channels": 1, "dropPath": 0.3,
            "layers": [{"type": "conv2d", "ic": 1, "oc": 2, "k": 3, "activation": "identity"},
                       {"type": "residualBlock", "ic": 2, "oc": 2, "nBlocks": 2},
                       {"type": "flatten"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "fanIn": 32, "fanOut": 2}]}
    write("netspec", "drop_residual.json", json.dumps(drop))
    vit = {"name": "v", "imageH": 4, "imageW": 4, "channels": 1, "dropPath": 0.2,
           "layers": [{"type": "patchEmbed", "name": "pe", "ic": 1, "dim": 4, "p": 2, "nPatches": 4},
                      {"type": "transformerEncoder", "dim": 4, "heads": 2, "mlpDim": 8, "nBlocks": 2, "keepSequence": True},
                      {"type": "dense", "name": "q", "fanIn": 4, "fanOut": 4},
                      {"type": "sdpa", "heads": 1, "causal": True, "inputs": ["q", "q", "q"]},
                      {"type": "clsPool"}, {"type": "dense", "fanIn": 4, "fanOut": 2}]}
    write("netspec", "vit_causal.json", json.dumps(vit))
    # Slightly broken.
    write("netspec", "bad_fanin.json", '{"name":"t","imageH":2,"imageW":2,"layers":[{"type":"flatten"},{"type":"dense","fanIn":5,"fanOut":2}]}')
    write("netspec", "bad_unknown_field.json", '{"name":"t","layers":[{"type":"dense","fanIn":784,"fanOut":10,"bias":true}]}')
    write("netspec", "bad_truncated.json", json.dumps(tiny)[:-9])
    write("netspec", "bad_recipe.json", '{"name":"t","imageH":1,"imageW":2,"layers":[{"type":"flatten"},{"type":"dense","fanIn":2,"fanOut":2}],"recipe":{"optimizer":"rmsprop","lr":-1,"momentum":1,"cosine":1}}')
    write("netspec", "bad_types.json", '{"name":7,"imageH":"28","channels":-3,"layers":{}}')
    write("netspec", "bad_huge.json", '{"name":"h","imageH":4611686018427388100,"imageW":4,"channels":1,"layers":[{"type":"flatten"},{"type":"dense","fanIn":784,"fanOut":18446744073709551615}]}')
    write("netspec", "bad_conv_shapes.json", '{"name":"k","imageH":2,"imageW":2,"layers":[{"type":"conv2d","ic":1,"oc":4,"k":9,"stride":4096,"padding":"valid"},{"type":"maxPool","size":5},{"type":"flatten"},{"type":"dense","fanIn":4,"fanOut":2}]}')
    write("netspec", "bad_not_object.json", '[{"type":"flatten"}]')
    write("netspec", "bad_one_class.json", '{"name":"t","imageH":1,"imageW":2,"layers":[{"type":"flatten"},{"type":"dense","fanIn":2,"fanOut":1}]}')
    write("netspec", "bad_last_not_dense.json", '{"name":"t","imageH":1,"imageW":2,"layers":[{"type":"flatten"},{"type":"dense","fanIn":2,"fanOut":2},{"type":"flatten"}]}')


# ---------------------------------------------------------------- idx (mode byte, see fuzz_idx.cpp)
def idx_images(n, rows, cols, pixels):
    return struct.pack(">IIII", 0x803, n, rows, cols) + bytes(pixels)


def idx_labels(n, labels):
    return struct.pack(">II", 0x801, n) + bytes(labels)


def idx():
    img = idx_images(2, 3, 3, [(i * 29) % 256 for i in range(18)])
    lbl = idx_labels(2, [3, 7])
    write("idx", "m0_images.bin", b"\x00" + img)
    write("idx", "m0_images_gz.bin", b"\x00" + gz(img))
    write("idx", "m0_images_gz_two_members.bin", b"\x00" + gz(img[:10]) + gz(img[10:]))
    write("idx", "m1_labels.bin", b"\x01" + idx_labels(2, [0, 9]))
    write("idx", "m1_labels_gz.bin", b"\x01" + gz(idx_labels(2, [5, 1])))
    write("idx", "m2_pair.bin", b"\x02" + img + NEXT + lbl)
    write("idx", "m2_pair_gz.bin", b"\x02" + gz(img) + NEXT + gz(lbl))
    write("idx", "m2_pair_4x1.bin", b"\x02" + idx_images(4, 1, 1, [0, 1, 254, 255]) + NEXT + idx_labels(4, [0, 1, 2, 3]))
    # Slightly broken.
    write("idx", "bad_m0_truncated.bin", b"\x00" + img[:-1])
    write("idx", "bad_m0_trailing.bin", b"\x00" + img + b"\x00")
    write("idx", "bad_m0_wrong_magic.bin", b"\x00" + lbl)
    write("idx", "bad_m0_short_header.bin", b"\x00" + img[:11])
    write("idx", "bad_m0_gz_truncated.bin", b"\x00" + gz(img)[:-6])
    write("idx", "bad_m0_gz_garbage.bin", b"\x00" + gz(img) + b"junk")
    write("idx", "bad_m1_label_range.bin", b"\x01" + idx_labels(2, [3, 10]))
    write("idx", "bad_m1_count.bin", b"\x01" + idx_labels(3, [1, 2, 3]))
    write("idx", "bad_m2_absurd_dims.bin", b"\x02" + struct.pack(">IIII", 0x803, 0xFFFFFFFF, 4096, 4096) + NEXT + lbl)
    write("idx", "bad_m2_zero.bin", b"\x02" + idx_images(0, 1, 1, []) + NEXT + idx_labels(0, []))


# ---------------------------------------------------------------- cifar (files split by --next-file--)
def cifar_record(label, seed):
    return bytes([label]) + bytes(((i // 97) * 7 + seed) % 256 for i in range(3072))


def cifar():
    r0, r1, r2 = cifar_record(3, 0), cifar_record(9, 50), cifar_record(0, 200)
    write("cifar", "one_record.bin", r0)
    write("cifar", "two_records_gz.bin", gz(r0 + r1))
    write("cifar", "two_files_gz.bin", gz(r0) + NEXT + gz(r1 + r2))
    write("cifar", "three_files_gz.bin", gz(r2) + NEXT + gz(r1) + NEXT + gz(r0))
    # Slightly broken.
    write("cifar", "bad_short_record.bin", gz(r0 + r1[:-1]))
    write("cifar", "bad_label.bin", gz(cifar_record(10, 1)))
    write("cifar", "bad_empty_second_file.bin", gz(r0) + NEXT)
    write("cifar", "bad_gz_truncated.bin", gz(r0 + r1)[:-5])
    write("cifar", "bad_raw_trailing.bin", r0[:1000])


# ---------------------------------------------------------------- checkpoint (safetensors)
def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, shape, list of floats). Mirrors save_safetensors: compact JSON, __metadata__ first,
    tensors in the order given, header space-padded to a multiple of 8."""
    header, buf = {}, b""
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name, shape, values in tensors:
        data = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + buf


def raw_safetensors(header_text, buf=b""):
    return struct.pack("<Q", len(header_text)) + header_text.encode() + buf


def checkpoint():
    w = [0.5, -1.25, 3.0, 0.0, -0.0, 1e-3]
    valid = safetensors([("w", [2, 3], w), ("b", [3], [1.0, 2.0, float("inf")])], {"epoch": "1", "step": "60"})
    write("checkpoint", "two_tensors_meta.safetensors", valid)
    write("checkpoint", "scalar_and_empty.safetensors", safetensors([("s", [], [7.0]), ("e", [0, 4], [])]))
    write("checkpoint", "empty.safetensors", safetensors([]))
    write("checkpoint", "unpadded.safetensors", safetensors([("x", [1], [2.0])], pad=False))
    write("checkpoint", "out_of_order.safetensors",
          raw_safetensors('{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
                          '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', struct.pack("<2f", 1, 2)))
    # Slightly broken.
    write("checkpoint", "bad_truncated.safetensors", valid[:-3])
    write("checkpoint", "bad_header_len.safetensors", struct.pack("<Q", 1 << 40) + valid[8:])
    write("checkpoint", "bad_dtype.safetensors",
          raw_safetensors('{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', b"\0" * 4))
    write("checkpoint", "bad_gap.safetensors",
          raw_safetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8))
    write("checkpoint", "bad_overlap.safetensors",
          raw_safetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                          '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8))
    write("checkpoint", "bad_duplicate.safetensors",
          raw_safetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                          '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4))
    write("checkpoint", "bad_shape_overflow.safetensors",
          raw_safetensors('{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}'))
    write("checkpoint", "bad_metadata.safetensors", raw_safetensors('{"__metadata__":{"k":1}}'))
    write("checkpoint", "bad_json.safetensors", raw_safetensors('{"a":{"dtype":"F32",'))


if __name__ == "__main__":
    # Only the corpora made here are regenerated; fuzz/corpus/image/ holds PNG/JPEG seeds written by libpng and
    # libjpeg (see fuzz/README.md) and is left alone.
    for t in ("netspec", "idx", "cifar", "checkpoint"):
        if os.path.isdir(os.path.join(CORPUS, t)):
            shutil.rmtree(os.path.join(CORPUS, t))
    netspec()
    idx()
    cifar()
    checkpoint()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        size = sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)
        print(f"fuzz/corpus/{t}: {len(files)} files, {size} bytes")
