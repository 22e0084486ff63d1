"""Part `params`: NDArray list files (.params) and their JSON manifests.

Files written by `mx.nd.save` cover every dtype MXNet 1.9.1 can save. Legacy
record versions (V0, V1) and odd contexts are built byte by byte with
`struct`, because 1.9.1 only writes V2 (V3 in numpy-shape mode); MXNet then
loads each one, and the manifest records what it returned.
"""

import hashlib
import json
import os
import struct

import numpy as np

import mxnet as mx

from fixture_util import (
    BFLOAT16,
    FIXTURES,
    TYPE_FLAGS,
    describe_array,
    ensure_dir,
    error_text,
    rng_for,
    run_python_isolated,
    write_json,
)

PARAMS_DIR = os.path.join(FIXTURES, "params")
INVALID_DIR = os.path.join(PARAMS_DIR, "invalid")

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
CPU = (1, 0)


def file_facts(path):
    data = open(path, "rb").read()
    return {
        "file": os.path.basename(path),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def load_manifest_arrays(path):
    """Load `path` with mx.nd.load and describe every array it returned, in file order."""
    loaded = mx.nd.load(path)
    if isinstance(loaded, dict):
        return True, [describe_array(name, array) for name, array in loaded.items()]
    return False, [describe_array(None, array) for array in loaded]


def write_saved(name, data, notes=""):
    """Save `data` (list or dict of NDArrays) with mx.nd.save and write its manifest."""
    path = os.path.join(PARAMS_DIR, name)
    mx.nd.save(path, data)
    named, arrays = load_manifest_arrays(path)
    manifest = file_facts(path)
    manifest.update(
        {
            "written_by": "mx.nd.save (MXNet 1.9.1)",
            "named": named,
            "mxnet_load": "ok",
            "arrays": arrays,
            "notes": notes,
        }
    )
    write_json(path + ".json", manifest)
    return path


# ---------------------------------------------------------------------------
# Hand-built records


def array_bytes(array):
    return np.ascontiguousarray(array).tobytes()


def dtype_flag(array):
    if array.dtype == BFLOAT16:
        return TYPE_FLAGS["bfloat16"]
    if array.dtype == np.bool_:
        return TYPE_FLAGS["bool"]
    return TYPE_FLAGS[array.dtype.name]


def v2_record(array, context=CPU, magic=V2_MAGIC, type_flag=None):
    """Build a dense V2 record: magic, stype 0, i32 ndim, i64 dims, ctx, type flag, data."""
    flag = dtype_flag(array) if type_flag is None else type_flag
    out = struct.pack("<Ii", magic, 0)
    out += struct.pack("<i", array.ndim) + struct.pack("<%dq" % array.ndim, *array.shape)
    out += struct.pack("<ii", *context) + struct.pack("<i", flag)
    return out + array_bytes(array)


def v1_record(array, context=CPU):
    """Build a V1 record: magic 0xF993FAC8, i32 ndim, i64 dims, ctx, type flag, data (no stype)."""
    out = struct.pack("<I", V1_MAGIC)
    out += struct.pack("<i", array.ndim) + struct.pack("<%dq" % array.ndim, *array.shape)
    out += struct.pack("<ii", *context) + struct.pack("<i", dtype_flag(array))
    return out + array_bytes(array)


def v0_record(array, context=CPU):
    """Build a legacy V0 record: u32 ndim in the magic slot, u32 dims, ctx, type flag, data."""
    out = struct.pack("<I", array.ndim) + struct.pack("<%dI" % array.ndim, *array.shape)
    out += struct.pack("<ii", *context) + struct.pack("<i", dtype_flag(array))
    return out + array_bytes(array)


def list_file(records, names=None, magic=LIST_MAGIC, name_count=None):
    """Assemble an NDArray list file from raw records and optional names."""
    names = names or []
    out = struct.pack("<QQQ", magic, 0, len(records)) + b"".join(records)
    out += struct.pack("<Q", len(names) if name_count is None else name_count)
    for name in names:
        encoded = name.encode("utf-8")
        out += struct.pack("<Q", len(encoded)) + encoded
    return out


def load_isolated(path):
    """Load a .params file with mx.nd.load in a child process.

    Returns ("ok", None), ("error", message), ("crash", message) or
    ("timeout", message). A malformed file can make
    MXNet 1.9.1 abort or allocate without bound, so it never runs in-process.
    """
    code = (
        "import mxnet as mx, sys\n"
        "try:\n"
        "    mx.nd.load(%r)\n"
        "except Exception as e:\n"
        "    sys.stdout.write('ERROR ' + str(e))\n"
        "    sys.exit(0)\n"
        "sys.stdout.write('OK')\n" % path
    )
    returncode, stdout, stderr = run_python_isolated(code)
    if returncode is None:
        return "timeout", stderr
    if returncode != 0:
        return "crash", "exit status %d: %s" % (returncode, error_text(stderr[-2000:]))
    if stdout.startswith("OK"):
        return "ok", None
    return "error", error_text(stdout[len("ERROR ") :])


def write_hand_built(name, data, notes):
    """Write hand-built bytes, load them with MXNet, and record the result in the manifest."""
    path = os.path.join(PARAMS_DIR, name)
    with open(path, "wb") as f:
        f.write(data)
    status, message = load_isolated(path)
    manifest = file_facts(path)
    manifest["written_by"] = "tools/fixtures_params.py with struct (hand-built)"
    manifest["mxnet_load"] = status
    if message is not None:
        manifest["mxnet_error"] = message
    if status == "ok":
        named, arrays = load_manifest_arrays(path)
        manifest["named"] = named
        manifest["arrays"] = arrays
    manifest["notes"] = notes
    write_json(path + ".json", manifest)
    return status


# ---------------------------------------------------------------------------
# Values


def sample_values(rs, dtype, shape):
    """Return random values of `dtype` that include negatives and the dtype's extremes."""
    count = int(np.prod(shape))
    if dtype in ("float32", "float64", "float16"):
        values = rs.randn(count).astype(dtype)
        info = np.finfo(dtype)
        specials = np.array([0.0, -0.0, 1.0, -1.0, info.max, info.min, info.tiny], dtype=dtype)
        if dtype == "float16":
            specials = np.append(specials, np.float16(2.0**-24))  # smallest subnormal
        values[: min(count, len(specials))] = specials[:count]
        return values.reshape(shape)
    if dtype == "bool":
        return (rs.rand(count) > 0.5).reshape(shape)
    info = np.iinfo(dtype)
    values = rs.randint(info.min, int(info.max) + 1, size=count, dtype=np.int64).astype(dtype)
    specials = np.array([0, 1, info.max, info.min], dtype=dtype)
    values[: min(count, len(specials))] = specials[:count]
    return values.reshape(shape)


def to_ndarray(values, dtype):
    if dtype == "bfloat16":
        if values.size == 0:
            # astype fails on zero-size arrays in 1.9.1 (its shape inference treats a 0 dim as unknown).
            return mx.nd.empty(values.shape, dtype=BFLOAT16)
        return mx.nd.array(values, dtype="float32").astype(BFLOAT16)
    return mx.nd.array(values, dtype=dtype)


# ---------------------------------------------------------------------------
# Fixture groups


def make_three():
    """Write the 206-byte float32/int8/uint8 example and its one-array files."""
    a = mx.nd.array([[0, 1, 2], [3, 4, 5]], dtype="float32")
    b = mx.nd.array([-1, 2, -128, 127], dtype="int8")
    c = mx.nd.array([0, 1, 255], dtype="uint8")
    path = write_saved(
        "three.params",
        {"arg:a": a, "arg:b": b, "aux:c": c},
        "Three arrays with arg:/aux: names; the uint8 payload is 3 bytes, so the "
        "name count that follows starts at an odd offset (0x9f). 206 bytes.",
    )
    size = os.path.getsize(path)
    if size != 206:
        raise RuntimeError("three.params is %d bytes, expected 206" % size)
    write_saved("i8.params", [b], "Unnamed list with one int8 array (name count 0). 68 bytes.")
    write_saved("u8.params", [c], "Unnamed list with one uint8 array (name count 0). 67 bytes.")


def make_dtypes():
    """Write one named file per dtype with arg:/aux:/bare names and multi-dim, length-1 and zero-size arrays."""
    for dtype in ["float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool", "bfloat16"]:
        rs = rng_for("params/dtype_" + dtype)
        source = "float32" if dtype == "bfloat16" else dtype
        data = {
            "arg:weight": to_ndarray(sample_values(rs, source, (2, 3, 4)), dtype),
            "aux:moving_mean": to_ndarray(sample_values(rs, source, (5,)), dtype),
            "bare_name": to_ndarray(sample_values(rs, source, (1,)), dtype),
            "arg:empty": to_ndarray(np.zeros((0, 3), dtype=source), dtype),
        }
        notes = "Named list; names with arg:, aux: and no prefix; the last array has shape (0, 3) and no data bytes."
        if dtype == "bfloat16":
            notes += (
                " Made with NDArray.astype(np.dtype([('bfloat16', np.uint16)])), the dtype "
                "MXNet 1.9.1's Python frontend maps to type flag 12. Values are the float "
                "value of each stored bfloat16 bit pattern."
            )
        if dtype == "bool":
            notes += " Values are JSON booleans; each element is stored as one byte 0 or 1."
        write_saved("dtype_%s.params" % dtype, data, notes)


def make_bfloat16_rounding():
    """Record MXNet's float32 -> bfloat16 conversion of chosen float32 bit patterns."""
    source_bits = [0x3F800000, 0x3F80C000, 0x3F818000, 0x3F808000, 0x3F80FFFF, 0xBFC00000, 0x7F7FFFFF, 0x00000000]
    source = np.array(source_bits, dtype=np.uint32).view(np.float32)
    converted = mx.nd.array(source, dtype="float32").astype(BFLOAT16)
    path = write_saved("bfloat16_rounding.params", {"bf16": converted}, "")
    bits = converted.asnumpy().view(np.uint16)
    manifest = json.load(open(path + ".json"))
    manifest["float32_source_bits"] = ["0x%08x" % b for b in source_bits]
    manifest["bfloat16_bits"] = ["0x%04x" % b for b in bits]
    truncated = [b >> 16 for b in source_bits]
    manifest["notes"] = (
        "bfloat16 made by astype from the float32 bit patterns listed. MXNet 1.9.1 %s: "
        "0x3f80c000 became 0x%04x (round-to-nearest-even would give 0x3f81)."
        % (
            "truncates (drops the low 16 bits)" if list(bits) == truncated else "does not simply truncate",
            bits[1],
        )
    )
    write_json(path + ".json", manifest)


def make_lists():
    rs = rng_for("params/lists")
    write_saved(
        "unnamed_mixed.params",
        [
            mx.nd.array(rs.randn(2, 2), dtype="float32"),
            mx.nd.array([-(2**40), 0, 2**40 + 7], dtype="int64"),
            mx.nd.array(rs.randn(2, 2, 2), dtype="float16"),
            mx.nd.array([True, False, False, True], dtype="bool"),
            mx.nd.array([1.5, -2.0, 0.1], dtype="float32").astype(BFLOAT16),
        ],
        "Unnamed list (name count 0) mixing five dtypes; mx.nd.load returns a Python list.",
    )
    write_saved("empty_list.params", [], "mx.nd.save(path, []): header, reserved, N=0, K=0. 32 bytes.")
    write_saved(
        "empty_dict.params",
        {},
        "mx.nd.save(path, {}): the same 32 bytes as an empty list; mx.nd.load returns an empty list, not a dict.",
    )
    write_saved(
        "zero_size.params",
        {
            "a": mx.nd.array(np.zeros((0,), dtype=np.float32)),
            "b": mx.nd.array(np.zeros((2, 0, 3), dtype=np.float32)),
            "c": mx.nd.array(np.zeros((0, 5), dtype=np.int8), dtype="int8"),
        },
        "Zero-size arrays: dims are stored, no data bytes follow. mx.nd.zeros cannot make "
        "them in 1.9.1 legacy shape mode (a 0 dim means unknown there), mx.nd.array can.",
    )
    write_saved(
        "high_rank.params",
        {
            "rank6": mx.nd.array(rs.randn(1, 2, 1, 3, 1, 2), dtype="float32"),
            "rank5": mx.nd.array(rs.randint(-100, 100, size=(2, 1, 2, 1, 2)), dtype="int32"),
            "rank1_len1": mx.nd.array([42.0], dtype="float64"),
        },
        "Arrays of rank 6, 5 and 1 (length 1).",
    )
    write_saved(
        "odd_names.params",
        {
            "arg:conv0:weight": mx.nd.array([1.0, 2.0]),
            "aux:": mx.nd.array([3.0]),
            "ärg:ünïcode": mx.nd.array([4.0]),
            "": mx.nd.array([5.0]),
            "arg:name with spaces": mx.nd.array([6.0]),
        },
        "Names are raw UTF-8 bytes with a u64 length: a second colon, an empty name after "
        "'aux:', non-ASCII letters, an empty name and spaces.",
    )


def make_legacy():
    """Write hand-built V0 and V1 records and a V2 record with a GPU context."""
    rs = rng_for("params/legacy")
    f32 = rs.randn(2, 3).astype(np.float32)
    i8 = np.array([-1, 2, -128, 127], dtype=np.int8)
    u8 = np.array([0, 1, 255], dtype=np.uint8)

    write_hand_built(
        "legacy_v0.params",
        list_file([v0_record(f32), v0_record(i8)]),
        "Two V0 records (first u32 is ndim, then u32 dims, ctx, type flag, data), unnamed "
        "list: float32 (2, 3) and int8 (4,).",
    )
    write_hand_built(
        "legacy_v0_named.params",
        list_file([v0_record(f32), v0_record(u8)], ["arg:a", "aux:c"]),
        "Two V0 records with names arg:a and aux:c.",
    )
    write_hand_built(
        "legacy_v0_ndim0.params",
        list_file([v0_record(np.array(7.5, dtype=np.float32))], ["scalar"]),
        "V0 record with ndim 0 followed by ctx, type flag and one float32 element (7.5). "
        "MXNet 1.9.1 does not treat ndim 0 as 'none' here; the manifest shows what it loaded.",
    )
    write_hand_built(
        "legacy_v1.params",
        list_file([v1_record(f32), v1_record(i8)], ["arg:a", "arg:b"]),
        "Two V1 records (magic 0xF993FAC8, i32 ndim, i64 dims, ctx, type flag, data; no "
        "storage type field), named.",
    )
    write_hand_built(
        "legacy_v1_unnamed.params",
        list_file([v1_record(np.arange(6, dtype=np.float64).reshape(3, 2))]),
        "One float64 V1 record, unnamed list.",
    )
    write_hand_built(
        "mixed_versions.params",
        list_file([v0_record(i8), v1_record(f32), v2_record(u8)], ["v0", "v1", "v2"]),
        "One V0, one V1 and one V2 record in the same file: the version is chosen per record.",
    )
    write_hand_built(
        "gpu_context.params",
        list_file([v2_record(f32, context=(2, 1))], ["arg:a"]),
        "V2 record whose context says gpu(1) (dev_type 2, dev_id 1). The CPU-only 1.9.1 "
        "build loads it into cpu(0).",
    )
    write_hand_built(
        "trailing_bytes.params",
        list_file([v2_record(i8)], ["arg:b"]) + b"\xde\xad\xbe\xef" * 4,
        "A valid file followed by 16 garbage bytes, which the loader ignores.",
    )


def make_v3_and_sparse():
    # V3: numpy-shape mode.
    path = os.path.join(PARAMS_DIR, "v3_numpy_shape.params")
    mx.npx.set_np()
    try:
        mx.npx.save(
            path,
            {
                "a": mx.np.array([[0, 1, 2], [3, 4, 5]], dtype="float32"),
                "s": mx.np.array(5.0, dtype="float32"),
                "z": mx.np.zeros((0, 3), dtype="float32"),
            },
        )
        loaded = mx.npx.load(path)
        arrays = [describe_array(name, loaded[name].as_nd_ndarray()) for name in loaded]
    finally:
        mx.npx.reset_np()
    status, message = load_isolated(path)
    manifest = file_facts(path)
    manifest.update(
        {
            "written_by": "mx.npx.save with numpy semantics on (MXNet 1.9.1)",
            "named": True,
            "mxnet_load": status,
            "mxnet_error": message,
            "arrays_numpy_mode": arrays,
            "notes": "V3 records (magic 0xF993FACA): a 0-d scalar s (ndim 0, one element) and "
            "a zero-size z. mxnet_load is mx.nd.load in the default legacy shape mode, which "
            "rejects V3; arrays_numpy_mode is what mx.npx.load returned with numpy semantics on.",
        }
    )
    write_json(path + ".json", manifest)

    # Sparse storage: a drop-in for inference may reject these.
    dense = np.array([[0, 0], [1, 2], [0, 0]], dtype=np.float32)
    for stype in ["row_sparse", "csr"]:
        path = os.path.join(PARAMS_DIR, "sparse_%s.params" % stype)
        mx.nd.save(path, [mx.nd.array(dense).tostype(stype)])
        manifest = file_facts(path)
        manifest.update(
            {
                "written_by": "mx.nd.save of NDArray.tostype(%r) (MXNet 1.9.1)" % stype,
                "named": False,
                "mxnet_load": "ok",
                "storage_type": stype,
                "arrays": [describe_array(None, mx.nd.load(path)[0].tostype("default"))],
                "notes": "Sparse storage (stype %d). arrays gives the dense equivalent."
                % {"row_sparse": 1, "csr": 2}[stype],
            }
        )
        write_json(path + ".json", manifest)


def make_invalid():
    """Write malformed files and record the error MXNet 1.9.1 raises for each."""
    ensure_dir(INVALID_DIR)
    f32 = np.arange(6, dtype=np.float32).reshape(2, 3)
    good = v2_record(f32)
    cases = [
        ("bad_list_magic", list_file([good], ["a"], magic=0x113), "List magic 0x113 instead of 0x112."),
        ("name_count_mismatch", list_file([good, good], ["a"]), "Two arrays but one name (K must be 0 or N)."),
        ("type_flag_int16", list_file([v2_record(f32, type_flag=8)], ["a"]), "Type flag 8 (int16), which 1.9.1 cannot load."),
        ("v2_negative_ndim", struct.pack("<QQQ", LIST_MAGIC, 0, 1) + struct.pack("<Iii", V2_MAGIC, 0, -1) + struct.pack("<Q", 0), "V2 record with ndim -1."),
        ("unknown_stype", list_file([struct.pack("<Ii", V2_MAGIC, 7) + good[8:]], ["a"]), "V2 record with storage type 7."),
        ("truncated_data", list_file([good], ["a"])[: 24 + len(good) - 8], "Cut inside the data of the only record."),
        ("truncated_header", struct.pack("<QQ", LIST_MAGIC, 0), "Only 16 bytes: the array count is missing."),
    ]
    manifest = []
    for name, data, description in cases:
        path = os.path.join(INVALID_DIR, name + ".params")
        with open(path, "wb") as f:
            f.write(data)
        status, message = load_isolated(path)
        manifest.append(
            {
                "file": name + ".params",
                "size": len(data),
                "description": description,
                "mxnet_load": status,
                "mxnet_error": message,
            }
        )
    write_json(os.path.join(INVALID_DIR, "manifest.json"), manifest)


def main():
    ensure_dir(PARAMS_DIR)
    make_three()
    make_dtypes()
    make_bfloat16_rounding()
    make_lists()
    make_legacy()
    make_v3_and_sparse()
    make_invalid()
