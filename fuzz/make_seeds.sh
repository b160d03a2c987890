#!/usr/bin/env bash
# Regenerates the seed inputs of the fuzz targets (fuzz/corpus/<target>/seed-*) from the project's own
# synthetic data: a demo run (fixture municipality, ingest, certificates issued and refused), its audit
# export, the protobuf leaves in it, the seal images of the fixtures and the rendered back of a
# certificate. Seeds give libFuzzer valid structure (check digits, UUIDs, PNG chunks) to mutate from.
# usage: fuzz/make_seeds.sh [path/to/bcl]   (needs pdftoppm from scripts/setup.sh, python3)
set -euo pipefail
cd "$(dirname "$0")"
bcl=$(realpath "${1:-../target/release/bcl}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bcl" demo --households 3 --out "$work/demo" >/dev/null
"$bcl" fixtures --households 3 --out "$work/muni.jsonl" >/dev/null
"$bcl" audit export --data-dir "$work/demo/data" --out "$work/export.bin" >/dev/null

for t in jsonl_events proto_append fold seal_png scan_image audit_export; do mkdir -p "corpus/$t"; done
head -n 12 "$work/muni.jsonl" > corpus/jsonl_events/seed-first-lines
grep -m 3 sealRegistered "$work/muni.jsonl" > corpus/jsonl_events/seed-seals || true
cp "$work/export.bin" corpus/audit_export/seed-demo-export
# A shorter export keeps the verification cheap enough for many executions per second.
python3 - "$work" <<'PY'
import base64, json, struct, sys
work = sys.argv[1]
data = open(f"{work}/export.bin", "rb").read()
magic = b"bcl-audit-export/1\n"
at = len(magic)
(note_len,) = struct.unpack(">I", data[at:at + 4]); at += 4 + note_len
(size,) = struct.unpack(">Q", data[at:at + 8]); at += 8 + 32 * size
leaves = []
while at < len(data):
    (n,) = struct.unpack(">I", data[at:at + 4]); at += 4
    leaves.append(data[at:at + n]); at += n
# A change-event leaf (LogLeaf field 1) is byte for byte an AppendRequest holding that one event, and
# concatenated leaves are a request with several events.
events = [l for l in leaves if l[:1] == b"\x0a"]
open("corpus/proto_append/seed-one-event", "wb").write(events[0])
open("corpus/proto_append/seed-ten-events", "wb").write(b"".join(events[:10]))
for kind, first in (("issuance", 0x12), ("admin", 0x1a), ("refusal", 0x2a)):
    found = [l for l in leaves if l[:1] == bytes([first])]
    if found:
        open(f"corpus/proto_append/seed-leaf-{kind}", "wb").write(found[0])
small = magic + data[len(magic):len(magic) + 4 + note_len] + struct.pack(">Q", 0)
small += b"".join(struct.pack(">I", len(l)) + l for l in leaves[:8])
open("corpus/audit_export/seed-eight-leaves", "wb").write(small)
seals = []
for line in open(f"{work}/muni.jsonl"):
    ev = json.loads(line)
    if "sealRegistered" in ev:
        seals.append(base64.b64decode(ev["sealRegistered"]["sealImagePng"]))
for i, png in enumerate(seals[:3]):
    open(f"corpus/seal_png/seed-fixture-{i}", "wb").write(png)
PY
# The back of a certificate at a low resolution (small enough for the full verification to run), as
# PNG and JPEG.
pdf=$(ls "$work"/demo/*.pdf | head -n 1)
pdftoppm -f 2 -l 2 -r 12 -png "$pdf" "$work/back"
pdftoppm -f 2 -l 2 -r 12 -jpeg "$pdf" "$work/backj"
cp "$work"/back*.png corpus/scan_image/seed-back-png
cp "$work"/backj*.jpg corpus/scan_image/seed-back-jpeg
cp corpus/seal_png/seed-fixture-0 corpus/scan_image/seed-seal-png
ls -l corpus/*/seed-* | awk '{print $5, $9}'
