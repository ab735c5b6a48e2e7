"""EmotiW submissions: a zip of ``<clip_id>.txt`` files at its root, each holding one label word.

The organisers score a missing clip as wrong and may reject a malformed zip, so the writer refuses
to write an incomplete submission (unless told how to fill the gaps, and then it reports each
filled clip), and the checker lists every defect of an existing zip.
"""

from __future__ import annotations

import json
import logging
import time
import unicodedata
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmfer.data.index import case_key
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, canonical
from mmfer.scores import ScoreTable, is_uniform, read_scores

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the test clip list
def index_clip_ids(index: str | Path) -> tuple[list[str], dict[str, str]]:
    """Test clip ids of ``index`` and, per clip, a note (e.g. why preprocessing failed).

    ``index``: a folder of test videos, an AFEW-style root (its Test/ is used), a CSV list, or a
    preprocessing cache (folder with manifest.jsonl, or the manifest itself; every Test record counts,
    failed ones too, since they still need a prediction).
    """
    from mmfer.data.cache import MANIFEST, read_manifest

    index = Path(index)
    manifest = index if index.name == MANIFEST and index.is_file() else index / MANIFEST
    if manifest.is_file():
        latest = read_manifest(manifest.parent)
        records = sorted((r for (s, _), r in latest.items() if s == "Test"), key=lambda r: r.clip_id)
        if not records:
            raise MmferError(f"{manifest}: no Test clips in this cache; point --index at the Test videos or an AFEW root")
        notes = {r.clip_id: f"preprocessing failed: {r.reason}" for r in records if r.status != "ok"}
        return [r.clip_id for r in records], notes
    from mmfer.data.index import index_source

    try:
        entries = index_source(index, splits=["Test"])
    except MmferError as e:
        if "out of --splits" not in str(e):  # (the wording of preprocess, which has that option)
            raise
        raise MmferError(f"{index}: an AFEW-style root without a Test/ folder; --index must be the Test folder, "
                         "an AFEW root holding it, a CSV list or a preprocess cache") from None
    ids = [e.clip_id for e in entries]
    if not ids:
        raise MmferError(f"{index}: no test videos found; --index must be the Test folder, an AFEW root or a CSV list")
    return ids, {}


def class_prior(table: ScoreTable) -> np.ndarray:
    """Class frequencies of a table's labels, or its mean probabilities when it has no labels."""
    idx = table.label_indices
    if (idx >= 0).any():
        counts = np.bincount(idx[idx >= 0], minlength=len(EMOTIONS)).astype(np.float64)
        return counts / counts.sum()
    return table.probs.mean(axis=0)


def prior_beside(fused_test_csv: str | Path) -> np.ndarray:
    """The class prior for filling missing Test clips: from ``fused_Val.csv`` next to the Test scores
    (true Val labels), else from the Test scores' mean probabilities."""
    val = Path(fused_test_csv).with_name("fused_Val.csv")
    return class_prior(read_scores(val if val.is_file() else fused_test_csv))


# ---------------------------------------------------------------- writer
def _loose_hint(extra: Sequence[str], missing: Sequence[str]) -> str:
    """Where score rows name index clips only up to an extension or letter case, say so: ids are compared
    exactly."""
    from mmfer.data.index import loosely_matched

    pairs = loosely_matched(extra, missing)
    if not pairs:
        return ""
    return (f"; {len(pairs)} score row(s) name them up to an extension or letter case ("
            + ", ".join(f"{a!r} for {b!r}" for a, b in pairs[:3]) + "): write the clip ids as the index has them")


def submission_path(path: str | Path, *, option: str, inputs: Sequence[str | Path] = ()) -> Path:
    """Where a submission zip goes: a name without an extension gets ``.zip`` (a submission is a zip and its name
    says so, as ``--png`` adds ``.png``); another extension is refused, as is any place no file can be written."""
    from mmfer.outputs import check_output_file

    return check_output_file(path, option=option, inputs=inputs, suffixes=(".zip",), default_suffix=".zip")


def write_submission(
    fused_test_csv: str | Path,
    *,
    index: str | Path,
    out: str | Path | None = None,
    fill_missing: np.ndarray | str | Path | None = None,
    out_zip: str | Path | None = None,
    fallback_probs: np.ndarray | str | Path | None = None,
) -> dict[str, Any]:
    """Write the EmotiW zip ``out`` for every clip of ``index`` from the fused Test scores (``mmfer submit
    FUSED_Test.csv --index INDEX --out team.zip``; ``out_zip`` and ``fallback_probs`` are the old names of
    ``out`` and ``fill_missing``, warned).

    Clips of the index without a score row, or with a uniform one (no branch saw anything), make this refuse with
    their list, unless ``fill_missing``
    says how to fill them: ``"prior"`` (see ``prior_beside``), a (7,) class prior (every missing clip
    gets its argmax) or a score CSV (e.g.
    the audio branch's Test scores, which exist for clips whose faces failed). Score rows for clips
    not in the index are left out and reported. Returns a report dict (also useful as JSON).
    """
    from mmfer.compat import renamed_argument

    out_zip = renamed_argument(out, out_zip, function="write_submission", new="out", old="out_zip", option="--out")
    fallback_probs = renamed_argument(fill_missing, fallback_probs, function="write_submission", new="fill_missing",
                                      old="fallback_probs", option="--fill-missing")
    if out_zip is None:
        raise MmferError("write_submission: give out, the zip to write (--out on the command line)")
    fused_test_csv = Path(fused_test_csv)
    read = [fused_test_csv, index, fused_test_csv.with_name("fused_Val.csv"),  # what it reads, never replaced
            *([fallback_probs] if isinstance(fallback_probs, (str, Path)) and str(fallback_probs) != "prior" else [])]
    out_zip = submission_path(out_zip, option="--out", inputs=read)  # before any reading
    if isinstance(fallback_probs, str) and fallback_probs == "prior":
        fallback_probs = prior_beside(fused_test_csv)
    table = read_scores(fused_test_csv)
    ids, notes = index_clip_ids(index)
    pos = {c: i for i, c in enumerate(table.clip_ids)}
    missing = [c for c in ids if c not in pos]
    extra = sorted(set(table.clip_ids) - set(ids))

    fallback_table: ScoreTable | None = None
    prior: np.ndarray | None = None
    if isinstance(fallback_probs, (str, Path)):
        fallback_table = read_scores(fallback_probs)
    elif fallback_probs is not None:
        prior = np.asarray(fallback_probs, dtype=np.float64).reshape(-1)
        if prior.shape != (len(EMOTIONS),) or not np.all(np.isfinite(prior)):
            raise MmferError(f"submission: fallback prior must be {len(EMOTIONS)} finite numbers, got {fallback_probs!r}")

    # a uniform fused row means no branch saw anything (e.g. no face and no audio): its argmax would be Angry by
    # position alone, so it is a gap like a missing row: filled from the fallback, or refused
    flat = {c for c in ids if c in pos and is_uniform(table.probs[pos[c]])}
    usable = [c for c in ids if c in pos and c not in flat]
    if ids and not usable:  # no fill can make this a submission of these scores
        labelled = sum(1 for lab in table.labels if lab)
        raise MmferError(
            f"{fused_test_csv}: no prediction for any of the {len(ids)} test clip(s) in {index} "
            f"({f'uniform rows for all {len(ids) - len(missing)} that have one; ' if len(missing) < len(ids) else ''}"
            f"{len(extra)} row(s) of other clips"
            + (f", {labelled} with a true label: Val or Train scores?" if labelled else "")
            + f"){_loose_hint(extra, missing)}. Give the Test scores of these clips (e.g. FUSE/fused_Test.csv)")
    gaps = [c for c in ids if c not in pos or c in flat]
    if gaps and fallback_table is None and prior is None:
        shown = ", ".join(f"{c} ({notes[c] if c in notes else 'uniform scores: no branch saw anything'})"
                          if c in notes or c in flat else c for c in gaps[:10])
        raise MmferError(
            f"{fused_test_csv}: no prediction for {len(gaps)} of {len(ids)} test clip(s) in {index}"
            f"{f' ({len(flat)} with uniform scores)' if flat else ''}{_loose_hint(extra, missing)}: {shown}"
            f"{' ...' if len(gaps) > 10 else ''}. Refusing to write an incomplete submission; score them "
            "(e.g. with the audio branch) or pass --fill-missing prior / --fill-missing AUDIO_Test.csv"
        )
    filled: dict[str, str] = {}
    words: dict[str, str] = {}
    fb_pos = {c: i for i, c in enumerate(fallback_table.clip_ids)} if fallback_table is not None else {}
    auto_prior: np.ndarray | None = None  # for uniform fallback rows only: a clip with no row at all is still refused
    for cid in ids:
        if cid in pos and cid not in flat:
            words[cid] = EMOTIONS[int(table.probs[pos[cid]].argmax())]
            continue
        fb_row = fallback_table.probs[fb_pos[cid]] if cid in fb_pos else None
        if fb_row is not None and not is_uniform(fb_row):
            words[cid] = EMOTIONS[int(fb_row.argmax())]
            filled[cid] = f"from {fallback_probs}"
        elif fb_row is not None:  # that branch saw nothing either: its argmax would be Angry by position alone
            if auto_prior is None:
                auto_prior = prior if prior is not None else prior_beside(fused_test_csv)
            words[cid] = EMOTIONS[int(auto_prior.argmax())]
            filled[cid] = f"class prior ({fallback_probs} is uniform for it too)"
        elif prior is not None:
            words[cid] = EMOTIONS[int(prior.argmax())]
            filled[cid] = "class prior"
        else:
            raise MmferError(
                f"{fallback_probs}: no row for test clip {cid} either; cannot fill it. "
                "Use --fill-missing prior to give remaining clips the most frequent class"
            )
        if cid in flat:
            filled[cid] += " (fused scores were uniform)"
        if cid in notes:
            filled[cid] += f" ({notes[cid]})"
    out_zip = Path(out_zip)
    write_zip(out_zip, {cid: words[cid] for cid in ids}, where=str(index))
    changed: list = []
    if (fused_test_csv.parent / "weights.json").is_file():  # scores of `mmfer fuse` (torch loaded only then)
        from mmfer.inference.bundle import branches_changed_since_fuse

        changed = branches_changed_since_fuse(fused_test_csv.parent)
    for name, run in changed:
        log.warning("%s: the checkpoint of branch %r in %s changed after `mmfer fuse` wrote these scores: this zip "
                    "holds the fusion of the checkpoint before. To submit the new one, re-run `mmfer scores` for "
                    "that run and `mmfer fuse`", fused_test_csv, name, run)
    for cid, how in filled.items():
        log.warning("%s: filled in, predicted %s %s", cid, words[cid], how)
    if extra:
        log.warning("%s: %d score row(s) for clips not in %s were left out (e.g. %s)",
                    fused_test_csv, len(extra), index, ", ".join(extra[:5]))
    counts = {e: sum(1 for w in words.values() if w == e) for e in EMOTIONS}
    return {
        "zip": str(out_zip),
        "clips": len(ids),
        "from_scores": len(ids) - len(filled),
        "filled": filled,
        "left_out_not_in_index": extra,
        "failed_preprocessing": sorted(notes),
        "prediction_counts": counts,
        "changed_since_fuse": [name for name, _ in changed],
        "problems": [],
    }


ZIP_EPOCH = 315532800  # 1980-01-01 00:00 UTC, the earliest time a zip entry can hold
LAST_ZIP_TIME = 4354819199  # 2107-12-31 23:59:59 UTC, the latest


def write_zip(out_zip: Path, words: dict[str, str], *, where: str) -> Path:
    """The zip of ``<clip_id>.txt`` entries, written whole or not at all: every id is checked first (no
    entry can name a path), the zip is built under a temporary name and checked, and only a zip without
    defects replaces ``out_zip``. On any failure nothing is left behind."""
    from mmfer.data.cache import check_clip_id

    for cid, word in words.items():
        check_clip_id(cid, where=f"{where}: submission entry")
        if word not in EMOTIONS:
            raise MmferError(f"{where}: clip {cid}: {word!r} is not one of {', '.join(EMOTIONS)}")
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    from mmfer.outputs import atomic_path, open_new, source_date

    # entries dated SOURCE_DATE_EPOCH, or 1980-01-01, never the clock and time zone of the run: the same labels make
    # the same zip, byte for byte (its checksum compares two submissions)
    stamp = time.gmtime(min(max(ZIP_EPOCH, source_date() or ZIP_EPOCH), LAST_ZIP_TIME))[:6]
    with atomic_path(out_zip) as tmp:
        with open_new(tmp, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for cid, word in words.items():
                entry = zipfile.ZipInfo(f"{cid}.txt", date_time=stamp)
                entry.external_attr = 0o644 << 16  # rw-r--r--, whatever the umask
                zf.writestr(entry, word, compress_type=zipfile.ZIP_DEFLATED)
        problems = _check_zip(tmp, list(words))
        if problems:
            raise MmferError(f"{out_zip}: the written zip does not check out ({'; '.join(problems[:3])}); not kept")
    return out_zip


# ---------------------------------------------------------------- checker
def check_submission(zip_path: str | Path, *, index: str | Path) -> list[str]:
    """Every defect of an EmotiW zip: not a zip, nested layout, non-.txt files, bad label words,
    duplicate, missing or extra clips. An empty list means the zip is valid; a missing file is an error."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():  # nothing to check: the mistake every command says with exit code 2
        raise MmferError(f"{zip_path}: file not found" if not zip_path.exists() else f"{zip_path}: not a file")
    if not zipfile.is_zipfile(zip_path):
        return [f"{zip_path}: not a zip archive"]
    return _check_zip(zip_path, index_clip_ids(index)[0])


# A label word is at most 8 bytes ("Surprise"); entries are read up to this size and never printed beyond it.
MAX_ENTRY_BYTES = 64


def _local_header_crc(raw, info: zipfile.ZipInfo) -> int | None:
    """The CRC in an entry's local header (None when a data descriptor carries it instead)."""
    import struct

    raw.seek(info.header_offset)
    head = raw.read(30)
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return -1
    flags, crc = struct.unpack("<H", head[6:8])[0], struct.unpack("<I", head[14:18])[0]
    return None if flags & 0x08 else crc


def _entry_problem(name: str) -> str:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = name.replace("\\", "/").split("/")
    if any(p in (".", "..") for p in parts):
        return "a path that climbs out of the folder ('..')"
    if len(parts) > 1:
        return "inside a folder"
    return ""


def _check_zip(zip_path: Path, ids: list[str]) -> list[str]:
    """``check_submission`` against an already-read list of test clip ids. Entries are read up to
    ``MAX_ENTRY_BYTES`` (a zip bomb is reported by its size, never inflated), their CRCs checked against
    both headers, and no entry content longer than a label word is ever printed."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    nested: list[str] = []
    try:
        with zipfile.ZipFile(zip_path) as zf, open(zip_path, "rb") as raw:
            for info in zf.infolist():
                name = info.filename
                shown = name if len(name) <= 80 else name[:77] + "..."
                if info.is_dir():
                    nested.append(shown)
                    continue
                unsafe = _entry_problem(name)
                if unsafe == "inside a folder":
                    nested.append(shown)
                    continue
                if unsafe:
                    problems.append(f"unsafe entry name {shown!r}: {unsafe}")
                    continue
                if not name.endswith(".txt"):
                    problems.append(f"unexpected file {shown!r} (only <clip_id>.txt files belong in the zip)")
                    continue
                cid = name[: -len(".txt")]
                seen[cid] = seen.get(cid, 0) + 1
                if info.file_size > MAX_ENTRY_BYTES:
                    problems.append(f"{shown}: {info.file_size} bytes; an entry holds one label word "
                                    f"(at most {MAX_ENTRY_BYTES} bytes)")
                    continue
                local_crc = _local_header_crc(raw, info)
                if local_crc == -1:
                    problems.append(f"{shown}: no local header where the directory says it is (corrupt zip)")
                    continue
                if local_crc is not None and local_crc != info.CRC:
                    problems.append(f"{shown}: CRC in its local header ({local_crc:08x}) differs from the "
                                    f"directory's ({info.CRC:08x}) (corrupt zip)")
                    continue
                try:
                    with zf.open(info) as f:
                        data = f.read(MAX_ENTRY_BYTES + 1)
                except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as e:
                    problems.append(f"{shown}: unreadable ({type(e).__name__}: {str(e)[:80]})")
                    continue
                if len(data) > MAX_ENTRY_BYTES:
                    problems.append(f"{shown}: inflates past {MAX_ENTRY_BYTES} bytes; an entry holds one label word")
                    continue
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    problems.append(f"{shown}: not UTF-8 text")
                    continue
                word = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
                if word not in EMOTIONS:
                    hint = ""
                    try:
                        c = canonical(word) if word.strip() else None
                        if c is not None:
                            hint = f" (write exactly {c!r})"
                    except MmferError:
                        pass
                    problems.append(f"{shown}: bad label word {word!r}; expected one of {', '.join(EMOTIONS)}{hint}")
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError) as e:
        return [f"{zip_path}: unreadable zip ({type(e).__name__}: {str(e)[:120]})"]
    if nested:
        problems.insert(0, f"bad layout: {len(nested)} entr{'y' if len(nested) == 1 else 'ies'} inside folders "
                           f"(e.g. {nested[0]!r}); the <clip_id>.txt files must sit at the zip root")
    dupes = sorted(c for c, k in seen.items() if k > 1)
    if dupes:
        problems.append(f"duplicate entries for {len(dupes)} clip(s): {', '.join(dupes[:10])}")
    by_case: dict[str, list[str]] = {}
    for c in seen:
        by_case.setdefault(case_key(c), []).append(c)
    for group in by_case.values():
        if len(group) > 1 and len({unicodedata.normalize("NFC", c) for c in group}) > 1:
            problems.append(f"entries {', '.join(repr(c + '.txt') for c in sorted(group))} differ only by letter case: "
                            "they overwrite each other where the zip is unpacked on a case-insensitive file system "
                            "(Windows, macOS); rename the clips so that their ids differ otherwise")
    want = set(ids)
    missing = [c for c in ids if c not in seen]
    extra = sorted(c for c in seen if c not in want)
    nfc_extra = {unicodedata.normalize("NFC", c): c for c in extra}
    for c in list(missing):  # the same name in two Unicode spellings looks identical when printed: say so
        e = nfc_extra.get(unicodedata.normalize("NFC", c))
        if e is not None and e in extra:
            problems.append(f"entry {ascii(e + '.txt')} spells test clip {ascii(c)} with other Unicode characters "
                            f"({_unicode_form(e)} in the zip, {_unicode_form(c)} in the index; they look the same): "
                            "write the entry with the index's spelling")
            missing.remove(c)
            extra.remove(e)
    if missing:
        problems.append(f"missing {len(missing)} of {len(ids)} test clip(s): {', '.join(missing[:10])}"
                        f"{' ...' if len(missing) > 10 else ''}")
    if extra:
        problems.append(f"{len(extra)} extra clip(s) not in the test index: {', '.join(extra[:10])}"
                        f"{' ...' if len(extra) > 10 else ''}")
    return problems


def _unicode_form(text: str) -> str:
    for form in ("NFC", "NFD"):
        if unicodedata.normalize(form, text) == text:
            return form
    return "mixed normalisation"


def format_submit_report(report: dict[str, Any]) -> str:
    lines = [f"wrote {report['zip']}: {report['clips']} clips ({report['from_scores']} from fused scores, "
             f"{len(report['filled'])} filled)"]
    for cid, how in list(report["filled"].items())[:20]:
        lines.append(f"  filled {cid}: {how}")
    if report["failed_preprocessing"]:
        failed = report["failed_preprocessing"]
        filled = sum(cid in report["filled"] for cid in failed)
        lines.append(f"{len(failed)} clip(s) failed preprocessing: {', '.join(failed[:10])}"
                     f"{' ...' if len(failed) > 10 else ''} ({len(failed) - filled} predicted from what the branches "
                     f"had, {filled} filled as listed above)")
    if report["left_out_not_in_index"]:
        lines.append(f"left out {len(report['left_out_not_in_index'])} score row(s) for clips not in the index")
    lines.append("predictions: " + json.dumps(report["prediction_counts"]))
    lines.append("check: " + ("OK" if not report["problems"] else "; ".join(report["problems"])))
    return "\n".join(lines)
