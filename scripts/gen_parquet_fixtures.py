#!/usr/bin/env python3
"""Write the parquet fixtures of rd-chain's footer reader (src/parquet/testdata/).

Each fixture is a small real parquet file written by pyarrow, next to `<name>.expected.json` holding what
pyarrow itself reports about it: the leaf column paths, the row count, the footer's format version, the
pandas index columns and the factor names (the second level of every `('feature', <name>)` column label,
read back from the pandas metadata with `ast.literal_eval`). The Rust tests compare their reading with these.

The first fixture is written the way RD-Agent's factor and model runners write `combined_factors_df.parquet`:
a DataFrame indexed by (datetime, instrument) whose columns are `pd.MultiIndex.from_product([["feature"],
names])`, saved with `to_parquet(path, engine="pyarrow")`. The others vary the writer's layout options.

Usage: python3 scripts/gen_parquet_fixtures.py [OUT_DIR]   (needs pandas and pyarrow; deterministic data)
"""
import ast
import json
import os
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "src", "parquet", "testdata")

# Names a factor loop really produces, plus ones that stress the label's Python-literal encoding.
FACTOR_NAMES = [
    "Momentum_10D",
    "Volatility 20D",
    "it's_a_quote",
    'say "hi"',
    "back\\slash",
    "成交量比率",
    "tab\there",
]


def rdagent_frame(names, n_days=3, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.MultiIndex.from_product(
        [pd.date_range("2024-01-02", periods=n_days), ["SH600000", "SZ000001"]],
        names=["datetime", "instrument"])
    df = pd.DataFrame(rng.standard_normal((len(idx), len(names))), index=idx, columns=names)
    df.columns = pd.MultiIndex.from_product([["feature"], df.columns])
    return df


def expected(path, factor_names):
    pf = pq.ParquetFile(path)
    md = pf.metadata
    cols = [md.schema.column(i).path for i in range(md.num_columns)]
    kv = md.metadata or {}
    index, factors = [], []
    if b"pandas" in kv:
        meta = json.loads(kv[b"pandas"])
        index = [c for c in meta["index_columns"] if isinstance(c, str)]
        levels = len(meta.get("column_indexes") or [None])
        for c in meta["columns"]:
            if c["field_name"] in index or not isinstance(c["name"], str) or levels < 2:
                continue
            label = ast.literal_eval(c["name"])
            if isinstance(label, tuple) and len(label) == 2 and label[0] == "feature":
                factors.append(label[1])
    if factor_names is not None and factors != list(factor_names):
        raise SystemExit(f"{path}: pandas metadata gives factors {factors}, wrote {factor_names}")
    return {
        "columns": cols,
        "num_rows": md.num_rows,
        "num_row_groups": md.num_row_groups,
        # FileMetaData.version: 1 for format 1.0, 2 for any 2.x.
        "format_version": 1 if md.format_version == "1.0" else 2,
        "index_columns": index,
        "factors": factors,
    }


def write(name, factor_names, writer):
    path = os.path.join(OUT, name + ".parquet")
    writer(path)
    exp = expected(path, factor_names)
    with open(os.path.join(OUT, name + ".expected.json"), "w", encoding="utf-8") as f:
        json.dump(exp, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{name}.parquet: {os.path.getsize(path)} bytes, {len(exp['columns'])} columns")


def main():
    os.makedirs(OUT, exist_ok=True)
    df = rdagent_frame(FACTOR_NAMES)
    # Exactly RD-Agent's call (pyarrow defaults: format 2.6, snappy, dictionary, statistics, page v1).
    write("rdagent_combined_factors", FACTOR_NAMES, lambda p: df.to_parquet(p, engine="pyarrow"))

    table = pa.Table.from_pandas(df)
    variants = {
        "format_1_0": dict(version="1.0"),
        "format_2_4": dict(version="2.4"),
        "format_2_6": dict(version="2.6"),
        "data_page_v2": dict(data_page_version="2.0"),
        "no_statistics": dict(write_statistics=False),
        "no_dictionary_uncompressed": dict(use_dictionary=False, compression="none"),
        "snappy_row_groups": dict(compression="snappy", row_group_size=2),
    }
    for name, opts in variants.items():
        write(name, FACTOR_NAMES, lambda p, opts=opts: pq.write_table(table, p, **opts))

    # Plain string column labels, a RangeIndex (not stored), string and int data.
    plain = pd.DataFrame({"alpha": [1.0, 2.0], "beta gamma": ["x", "y"], "n": [1, 2]})
    write("plain_columns", [], lambda p: plain.to_parquet(p, engine="pyarrow"))

    # An unnamed stored index (__index_level_0__).
    unnamed = pd.DataFrame({"v": [1.5, 2.5]}, index=pd.Index(["a", "b"]))
    write("unnamed_index", [], lambda p: unnamed.to_parquet(p, engine="pyarrow"))

    # 500 factors, RD-Agent's layout, without statistics to keep the file small.
    wide_names = [f"factor_{i:03d}" for i in range(500)]
    wide = rdagent_frame(wide_names, n_days=1, seed=1)
    write("wide_500", wide_names,
          lambda p: wide.to_parquet(p, engine="pyarrow", write_statistics=False, compression="none"))

    # No pandas metadata at all, with nested (group) columns: struct and list.
    nested = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "s": pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]),
        "l": pa.array([[1.0], [2.0, 3.0]]),
    })
    write("nested_no_pandas", None, lambda p: pq.write_table(nested, p))


if __name__ == "__main__":
    main()
