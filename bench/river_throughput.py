"""Learn+predict throughput of River's LogisticRegression on feature vectors from a JSONL file
({"x": {name: value}, "y": 0|1} per line): predict_proba_one then learn_one per sample, as River
runs online. Prints JSON with samples/s (parsing excluded)."""
import json, sys, time
from river import linear_model

rows = [json.loads(line) for line in open(sys.argv[1])]
model = linear_model.LogisticRegression()
start = time.perf_counter()
for r in rows:
    model.predict_proba_one(r['x'])
    model.learn_one(r['x'], r['y'])
elapsed = time.perf_counter() - start
print(json.dumps({'samples': len(rows), 'seconds': elapsed, 'samples_per_s': len(rows) / elapsed}))
