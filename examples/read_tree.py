#!/usr/bin/env python3
"""Read a tree written by fedota-store the way the existing Python services do.

Paths are joined by hand, weights are parsed with int(), and checkpoints are read as
raw bytes. Each checkpoint's safetensors header is parsed with json and struct, to
show that the files fedota-store commits are plain, valid files for a reader that
knows nothing about fedota-store's dot-files.

Weights follow the stricter rule of the Go services, which parse them with
strconv.ParseInt(s, 10, 64), before int(): int() alone would also take whitespace
(a trailing newline, say) and underscores, which ParseInt refuses. The script takes
ASCII digits only, up to 2**63 - 1, as fedota-store does; every weight file
fedota-store writes passes.

usage: read_tree.py ROOT PROBLEM_ID
       read_tree.py PROBLEM_DIR

Exits 1 if a file cannot be parsed, 2 on a usage error. Standard library only.
"""

import json
import os
import re
import struct
import sys

# Bytes per element of each safetensors dtype.
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}


class ParseError(Exception):
    """A file that a service could not use."""


# The largest weight strconv.ParseInt(s, 10, 64) can return.
MAX_WEIGHT = 2**63 - 1


def read_weight(path):
    """A weight file: ASCII digits only, nothing around them, at most MAX_WEIGHT.

    That is fedota-store's rule, and it passes both int() and the Go services'
    strconv.ParseInt(s, 10, 64); int() alone is looser (see the module docstring).
    """
    with open(path, "rb") as f:
        text = f.read().decode("ascii")
    if not re.fullmatch(r"[0-9]+", text) or int(text) > MAX_WEIGHT:
        raise ParseError("%s: not a plain decimal weight: %r" % (path, text))
    return int(text)


def read_safetensors(path):
    """Parses a safetensors file's header and checks that its tensors fit the data.

    Returns (tensors, metadata, values), where values maps each F32 tensor's name to
    its numbers.
    """
    with open(path, "rb") as f:
        raw = f.read()

    if len(raw) < 8:
        raise ParseError("%s: %d bytes, too short for a safetensors header"
                         % (path, len(raw)))
    (header_len,) = struct.unpack("<Q", raw[:8])
    if 8 + header_len > len(raw):
        raise ParseError("%s: header of %d bytes overruns the file" % (path, header_len))
    try:
        header = json.loads(raw[8:8 + header_len].decode("utf-8"))
    except ValueError as e:
        raise ParseError("%s: header is not JSON: %s" % (path, e))

    data = raw[8 + header_len:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    values = {}
    end = 0
    for name, info in sorted(header.items()):
        dtype, shape, (begin, stop) = info["dtype"], info["shape"], info["data_offsets"]
        count = 1
        for dim in shape:
            count *= dim
        if dtype not in DTYPE_SIZES or stop - begin != count * DTYPE_SIZES[dtype]:
            raise ParseError("%s: tensor %s (%s %s) has %d bytes"
                             % (path, name, dtype, shape, stop - begin))
        if stop > len(data):
            raise ParseError("%s: tensor %s ends past the data" % (path, name))
        tensors[name] = (dtype, shape)
        if dtype == "F32":
            values[name] = struct.unpack("<%df" % count, data[begin:stop])
        end = max(end, stop)
    if end != len(data):
        raise ParseError("%s: %d data bytes, but the tensors cover %d" % (path, len(data), end))
    return tensors, metadata, values


def describe(tensors, metadata):
    shapes = ", ".join("%s %s %s" % (n, d, s) for n, (d, s) in sorted(tensors.items()))
    return "round %s, %s" % (metadata.get("round", "?"), shapes)


def main(argv):
    if len(argv) == 3:
        problem_dir = argv[1] + "/" + argv[2]
    elif len(argv) == 2:
        problem_dir = argv[1]
    else:
        sys.stderr.write(__doc__)
        return 2

    # initFiles: the model description and the global checkpoint.
    init_dir = problem_dir + "/initFiles"
    with open(init_dir + "/model.h5", "rb") as f:
        model = f.read()
    print("%s/model.h5: %d bytes" % (init_dir, len(model)))

    tensors, metadata, values = read_safetensors(init_dir + "/fl_checkpoint")
    print("%s/fl_checkpoint: %s" % (init_dir, describe(tensors, metadata)))
    if "bias" in values and "weight" in values:
        weights = " ".join("%.3f" % w for w in values["weight"])
        print("  bias %.4f, weights %s" % (values["bias"][0], weights))

    # Each selector: its aggregate with its weight, and its clients' updates.
    selectors = sorted(
        name for name in os.listdir(problem_dir)
        if not name.startswith(".") and name != "initFiles"
        and os.path.isdir(problem_dir + "/" + name)
    )
    for selector in selectors:
        selector_dir = problem_dir + "/" + selector
        tensors, metadata, _ = read_safetensors(selector_dir + "/fl_agg_checkpoint")
        weight = read_weight(selector_dir + "/fl_agg_checkpoint_weight")
        print("%s/fl_agg_checkpoint: weight %d, %s"
              % (selector_dir, weight, describe(tensors, metadata)))

        round_dir = selector_dir + "/roundFiles"
        clients = sorted(
            int(name[len("checkpoint_"):]) for name in os.listdir(round_dir)
            if re.fullmatch(r"checkpoint_[0-9]+", name)
        )
        same_round = 0
        for client in clients:
            client_tensors, client_metadata, _ = read_safetensors(
                round_dir + "/checkpoint_%d" % client)
            client_weight = read_weight(round_dir + "/checkpoint_weight_%d" % client)
            print("  roundFiles/checkpoint_%d: weight %d, %s"
                  % (client, client_weight, describe(client_tensors, client_metadata)))
            if client_metadata.get("round") == metadata.get("round"):
                same_round += client_weight
        print("  the aggregate's weight %s the sum of its round's client weights (%d)"
              % ("equals" if same_round == weight else "differs from", same_round))

    print("read %d selectors; every file parsed" % len(selectors))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (ParseError, OSError, UnicodeDecodeError, KeyError, ValueError) as e:
        sys.stderr.write("read_tree.py: %s\n" % e)
        sys.exit(1)
