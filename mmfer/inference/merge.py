"""``mmfer merge``: the per-shard CSVs of ``predict --shard`` joined into one, as one unsharded run would have
written it, with the shards' run records (``mmfer.inference.resume``) checked."""

from __future__ import annotations

import csv
import logging
from pathlib import Path, PurePath
from typing import Any, Iterable

from mmfer.errors import MmferError, csv_errors

log = logging.getLogger(__name__)


def merge_csvs(inputs: Iterable[str | Path], out: str | Path, *, partial: bool = False) -> dict[str, Any]:
    """``mmfer merge``: one CSV from the per-shard CSVs of ``predict --shard`` (predictions, segments or frames:
    all inputs must have the same header). Rows are sorted by path, and a row
    that two inputs both hold (the same shard run twice, a file named relative to one folder in one and absolute
    in another) is kept once; two different rows for the same file are an error, since they cannot both be right.
    Files come in the order a run over their folder lists them, and each file's rows in the order its shard
    wrote them (a frames CSV: face rows, then audio rows), so the merge reads as one unsharded run's output.
    A predictions CSV whose run record (``mmfer.inference.resume``) says it did not finish is refused unless
    ``partial``, and so are two whose records name different models or options."""
    import os

    from mmfer.inference.resume import differences, older_note, read_record, unknown_keys
    from mmfer.outputs import atomic_write, check_output_file

    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise MmferError("merge: give the CSVs to merge")
    check_output_file(out, option="--out")
    header: list[str] | None = None
    rows: dict[tuple, list[str]] = {}
    first_settings: tuple[Path, dict[str, Any], set[str]] | None = None
    for p in inputs:
        if not p.is_file():
            raise MmferError(f"{p}: file not found")
        record = read_record(p, older=True) or {}
        if record and not record.get("finished") and not partial:
            raise MmferError(f"{p}: its predict run did not finish (stopped or still running){older_note(p, record)}; "
                             "run its command again to finish it, then merge (--partial merges the rows so far)")
        if record and first_settings is None:
            first_settings = (p, record["settings"], unknown_keys(record))
        elif record:
            # copies of one model on several machines have the same weights and are one model; other weights are
            # said, not refused (a model updated between shards); options that decide the figures must agree
            changed = differences(first_settings[1], record["settings"],
                                  unknown=first_settings[2] | unknown_keys(record))
            options = [d for d in changed if d.split(" ", 1)[0] not in ("model", "weights", "mmfer", "device")]
            if options:
                raise MmferError(f"{p}: written with other options than {first_settings[0]} ({'; '.join(options)}); "
                                 "merge the shards of one model and options")
            devices = [d for d in changed if d.startswith("device ")]  # shards of a mixed cluster, --device auto
            if devices:
                log.warning("%s and %s: %s; merged: their figures differ in the last digits, not in kind",
                            first_settings[0], p, devices[0])
            if len(changed) > len(devices):
                log.warning("%s and %s: %s; merge shards of one model only", first_settings[0], p,
                            "; ".join(d for d in changed if d not in devices))
        cwd = record.get("cwd") or os.getcwd()  # a relative path is of the folder its run started in
        if Path(out).exists() and p.resolve() == Path(out).resolve():
            raise MmferError(f"{p}: is also the output; write the merge to another file")
        with open(p, newline="", encoding="utf-8-sig") as f, csv_errors(p):
            r = csv.reader(f)
            head = next(r, None)
            if head is None:
                raise MmferError(f"{p}: empty file (no header)")
            if header is None:
                if "path" not in head:  # a score CSV keys its rows by clip_id, and no shard wrote it
                    raise MmferError(f"{p}: not a predictions, segments or frames CSV of `mmfer predict` (no path "
                                     "column); merge joins the CSVs of `predict --shard`")
                header = head
            elif head != header:
                if [c for c in head if c != "label"] == [c for c in header if c != "label"]:  # --labels-from in one
                    raise MmferError(f"{p}: {'has' if 'label' in head else 'lacks'} the label column of "
                                     f"{inputs[0]}; run every shard with the same --labels-from")
                raise MmferError(f"{p}: its columns differ from {inputs[0]}'s; merge files of one kind (predictions, "
                                 "segments or frames) written by the same mmfer")
            # (older frames CSVs named the modality column "source")
            key_cols = [header.index(c) for c in ("path", "start", "time", "modality", "source") if c in header]
            path_col = header.index("path")
            for n, row in enumerate(r, start=2):
                if len(row) != len(header):
                    raise MmferError(f"{p}, line {n}: {len(row)} fields, the header has {len(header)}")
                place = os.path.normpath(os.path.join(cwd, row[path_col]))  # one file however it was named
                key = tuple(place if i == path_col else row[i] for i in key_cols)
                if key in rows and [v for i, v in enumerate(rows[key]) if i != path_col] != [
                        v for i, v in enumerate(row) if i != path_col]:
                    raise MmferError(f"{p}, line {n}: {key[0]} appears in two inputs with different values; "
                                     "were the shards run with different models or settings?")
                rows.setdefault(key, row)
    assert header is not None
    path_col = header.index("path")

    def sort_key(item: tuple[tuple, list[str]]):  # files as a folder run lists them; a file's rows as written
        return PurePath(item[0][0]).parts

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for _, row in sorted(rows.items(), key=sort_key):
            w.writerow(row)
    return {"out": out, "inputs": len(inputs), "rows": len(rows), "columns": header}
