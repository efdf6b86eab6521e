"""A QOR Python job: summarize a CSV of measurements.

Run it on the market with `qor job run examples/python/analysis.py --input examples/python/data.csv`;
`qor job quote` with the same arguments prints the exact fuel and price first.
"""
import csv
import json
import random
import statistics

with open("/in/data.csv", newline="") as f:
    rows = list(csv.DictReader(f))

by_site = {}
for row in rows:
    by_site.setdefault(row["site"], []).append(float(row["value"]))

summary = {
    site: {"n": len(v), "mean": round(statistics.fmean(v), 6), "stdev": round(statistics.pstdev(v), 6)}
    for site, v in sorted(by_site.items())
}
# Random numbers are seeded by the job itself: every replica draws the same ones.
sample = random.sample(range(len(rows)), k=min(3, len(rows)))

with open("/out/summary.json", "w") as f:
    json.dump({"sites": summary, "sample": sample}, f, indent=2, sort_keys=True)
for site, s in summary.items():
    print(f"{site}: n={s['n']} mean={s['mean']} stdev={s['stdev']}")
