"""Turns the JSON lines of benches/peers/run.sh into one markdown report with ratios against POP."""

import json
import sys


def fmt(v, digits=1):
    if v is None or v != v:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    meta = {k: v for r in rows for k, v in r.items() if k in ("machine", "load_start", "load_end")}
    notes = [r["note"] for r in rows if "note" in r]
    out = [f"Machine: {meta.get('machine', '?')}; load average at start {meta.get('load_start', '?')}, "
           f"at end {meta.get('load_end', '?')}.", ""]

    dag = [r for r in rows if r.get("bench") == "dag"]
    if dag:
        out += ["### Layered DAG (width 10, fan-in 10, no-op operations)", "",
                "µs per operation: wall (CPU of the whole process); ratio = peer / pop-exec (> 1: POP is faster "
                "or smaller). Peak memory: peak resident set above the resident set before the workload was built, "
                "per operation.", "",
                "| operations | engine | µs/op wall | µs/op CPU | × pop (wall) | × pop (CPU) | peak B/op | × pop (memory) |",
                "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for n in sorted({r["ops"] for r in dag}):
            pop = next((r for r in dag if r["ops"] == n and r["peer"] == "pop-exec"), None)
            for r in [x for x in dag if x["ops"] == n]:
                ratio = lambda k: fmt(r[k] / pop[k], 2) if pop and pop[k] else "–"
                out.append(f"| {n:,} | {r['peer']} | {fmt(r['us_per_op'], 2)} | {fmt(r['cpu_us_per_op'], 2)} | "
                           f"{ratio('us_per_op')} | {ratio('cpu_us_per_op')} | {fmt(r['peak_bytes_per_op'], 0)} | "
                           f"{ratio('peak_bytes_per_op')} |")
        out.append("")

    e2e = [r for r in rows if r.get("bench") == "e2e"]
    if e2e:
        out += ["### End to end: closed loop (each client submits a workflow and waits for it)", "",
                "| workflow | system | clients | workflows | workflows/s | × pop | p50 ms | p99 ms |",
                "|---|---|---:|---:|---:|---:|---:|---:|"]
        for ops in sorted({r["ops"] for r in e2e}):
            pop = next((r for r in e2e if r["ops"] == ops and r["peer"] == "pop"), None)
            for r in [x for x in e2e if x["ops"] == ops]:
                ratio = fmt(r["per_sec"] / pop["per_sec"], 2) if pop else "–"
                out.append(f"| {ops} op{'s' if ops > 1 else ''} | {r['peer']} | {r['clients']} | {r['workflows']:,} | "
                           f"{fmt(r['per_sec'])} | {ratio} | {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} |")
        out.append("")

    burst = [r for r in rows if r.get("bench") == "burst"]
    if burst:
        out += ["### Burst (workflows submitted at once; ms from the start of the burst)", "",
                "| system | workflows | submitted in | first finished | p50 finished | last finished (batch) | batch × pop |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        pop = next((r for r in burst if r["peer"] == "pop"), None)
        for r in burst:
            ratio = fmt(r["last_ms"] / pop["last_ms"], 2) if pop else "–"
            out.append(f"| {r['peer']} ({r['workflows']:,} × {r['ops']} ops) | {r['workflows']:,} | "
                       f"{fmt(r['submitted_ms'])} | {fmt(r['first_ms'])} | {fmt(r['p50_ms'])} | {fmt(r['last_ms'])} | {ratio} |")
        out.append("")

    if notes:
        out += ["Notes:", ""] + [f"* {n}" for n in notes] + [""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
