#!/usr/bin/env python3
"""Markdown rows from kiosk-load report.json files (bench/run.sh prints them for BENCHMARKS.md).

    bench/summarize.py LABEL=out/bench/kiosk-load/open-100/report.json ...

One row per report: offered and achieved rates, how the requests ended, shed answers, and latency
percentiles of every answer (from the intended send instant) and of the useful answers (issued,
replayed, refused as the case calls for). "sustained" is yes when p99 of every answer is at most 10 ms
and nothing was shed or failed: the definition of the maximum sustainable rate in BENCHMARKS.md. "send lag"
is the harness's own lateness in sending (open loop; p50 / p99 ms), which every latency figure includes.
Reports of kiosk-load builds from before it was recorded show "?"."""
import json
import sys

print("| run | offered/s | sent/s | good/s | issued/replayed/refused/errors | shed | p50 ms | p90 | p99 | max | good p99 | engine CPU ms/request | sustained (p99 ≤ 10 ms, no errors) | send lag p50 / p99 ms |")
print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    try:
        r = json.load(open(path))
    except OSError:
        print(f"| {label} | (no report: {path}) |")
        continue
    c = r["counts"]
    lat = {(h["dimension"], h["key"]): h for h in r["latency"]}
    unit = 1000.0 if r.get("latency_unit") == "microseconds" else 1.0
    ms = lambda h, p: h[p] / unit if h else float("nan")
    a = lat[("all", "all")]
    # Useful answers: the widest of the issued/replayed/refused p99s (a conservative stand-in).
    good = [lat[k] for k in (("outcome", "issued"), ("outcome", "replayed"), ("outcome", "refused")) if k in lat]
    good_p99 = max((ms(h, "p99") for h in good), default=float("nan"))
    window = r["throughput"]["send_window_s"]
    sent = c["sent"]
    good_n = c["issued"] + c["replayed"] + c["refused"]
    shed = sum(v for k, v in r.get("errors_by_status", {}).items() if "ENGINE_OVERLOADED" in k)
    cpu = [e.get("cpu_s") for e in r.get("engines", []) if e.get("cpu_s") is not None]
    warm = c.get("warmup_sent", 0)
    cpu_ms = f"{1000 * sum(cpu) / (sent + warm):.1f}" if cpu and sent + warm else "?"
    sent_s = r["throughput"]["sent_per_s"]
    good_s = good_n / r["throughput"]["completion_window_s"]
    ok = ms(a, "p99") <= 10.0 and c["errors"] == 0
    lag = r.get("send_lag")
    lag_ms = f"{ms(lag, 'p50'):.2f} / {ms(lag, 'p99'):.2f}" if lag else ("–" if r["throughput"].get("offered_per_s") is None else "?")
    print(
        f"| {label} | {r['throughput'].get('offered_per_s') or 'closed'} | {sent_s:.0f} | {good_s:.0f} "
        f"| {c['issued']}/{c['replayed']}/{c['refused']}/{c['errors']} | {shed} | {ms(a, 'p50'):.1f} | {ms(a, 'p90'):.1f} "
        f"| {ms(a, 'p99'):.1f} | {ms(a, 'max'):.1f} | {good_p99:.1f} | {cpu_ms} | {'yes' if ok else 'no'} | {lag_ms} |"
    )
