"""Learn+predict throughput of River's LogisticRegression on feature vectors from a JSONL file
({"x": {name: value}, "y": 0|1} per line): predict_proba_one then learn_one per sample, as River
runs online. One unmeasured pass, then PASSES measured passes over the vectors (default 5), the
same model learning on; prints JSON with the median samples/s and each pass's (parsing excluded).

    python river_throughput.py VECTORS.jsonl [PASSES]"""
import json, statistics, sys, time
from river import linear_model

rows = [json.loads(line) for line in open(sys.argv[1])]
passes = int(sys.argv[2]) if len(sys.argv) > 2 else 5
model = linear_model.LogisticRegression()
rates = []
for p in range(passes + 1):
    start = time.perf_counter()
    for r in rows:
        model.predict_proba_one(r['x'])
        model.learn_one(r['x'], r['y'])
    elapsed = time.perf_counter() - start
    if p > 0:
        rates.append(len(rows) / elapsed)
print(json.dumps({'samples': len(rows), 'passes': len(rates), 'samples_per_s': statistics.median(rates), 'pass_samples_per_s': rates}))
