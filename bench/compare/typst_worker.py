"""Warm Typst (the compiler as a library, PyPI `typst`): one Compiler for the whole run, so fonts are
loaded once and Typst's own memoisation works across documents, as in a long-running Typst service.

Protocol (driven by `bcl-bench compare`): one JSON object per stdin line, {"data": JSON-string,
"out": path}; for each, the PDF is compiled, written to `out`, and one line "ok BYTES" is printed."""
import json
import sys

import typst

template, *font_paths = sys.argv[1:]
root = template.rsplit("/", 1)[0] or "."
compiler = typst.Compiler(root=root, font_paths=font_paths)
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pdf = compiler.compile(input=template, sys_inputs={"data": job["data"]})
    with open(job["out"], "wb") as f:
        f.write(pdf)
    print(f"ok {len(pdf)}", flush=True)
